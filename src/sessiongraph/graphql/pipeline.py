"""A query or mutation from its text to its result, as Strawberry runs it with our
extensions, without building them for every request.

For every operation, Strawberry's ``Schema.execute`` builds an execution context,
an instance of each extension, a runner, and for each of four stages a context
manager around each extension's hook (``contextlib`` wrappers made afresh); then
parses, checks the operation type, validates and executes between the hooks. Ours
do the same few things on every request: parse through the shared cache, check the
limits (``admit``), validate through the schema's cache, shape the errors, report
the cost. Here they are called in the order the hooks run, with the same outcomes:
the same result, the same errors shaped the same way (or left to the view, as
Strawberry leaves an exception of the pipeline itself), the same exceptions for the
view to answer with a 400, and the same errors logged.

Strawberry still runs the extensions for operations over WebSocket (``stream``),
and for every operation when ``Schema.lean`` is off; ``compat.py`` checks at
start-up that what this module imports is there, and tests compare the two ways.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Set
from inspect import isawaitable
from typing import TYPE_CHECKING, Any, TypeGuard, cast

from graphql import GraphQLError, execute
from strawberry.exceptions import MissingQueryError
from strawberry.execution import optimized_is_awaitable
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.schema.schema import validate_document
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType
from strawberry.utils.operation import get_first_operation, get_operation_type

from sessiongraph.graphql import documents
from sessiongraph.graphql.errors import shape_error
from sessiongraph.graphql.limits import admit, cost_report

if TYPE_CHECKING:
    from sessiongraph.graphql.schema import Schema

#: Strawberry's check of resolver results (typed as a plain bool, as graphql-core's is not).
_is_awaitable = cast("Callable[[Any], TypeGuard[Awaitable[Any]]]", optimized_is_awaitable)


async def run(
    schema: Schema,
    query: str | None,
    *,
    variable_values: dict[str, Any] | None,
    context_value: Any,
    root_value: Any,
    operation_name: str | None,
    allowed: Set[OperationType],
    operation_extensions: dict[str, Any] | None,
) -> ExecutionResult:
    """What ``strawberry.Schema.execute`` returns (or raises) for these arguments, with
    the schema's extensions: ``RequestLimits``, ``DocumentCache``, ``ErrorShapes`` and
    an ``AddValidationRules`` (``DisableIntrospection``)."""
    if not query:
        raise MissingQueryError
    try:  # DocumentCache.on_parse
        document = documents.parsed(query, schema.max_tokens)
    except GraphQLError as error:
        return _refused(schema, [error])
    except Exception as error:  # raised by the hook itself, outside the extensions
        return _failed(schema, error)
    if operation_name is None:  # ExecutionContext.operation_name: the first operation's
        first = get_first_operation(document)
        operation_name = first.name.value if first is not None and first.name else None
    try:
        operation_type = get_operation_type(document, operation_name)
    except RuntimeError as error:
        raise CannotGetOperationTypeError(operation_name) from error
    if operation_type not in allowed:
        raise InvalidOperationTypeError(operation_type)
    try:
        # RequestLimits.on_validate, then DocumentCache.on_validate
        errors, cost = admit(
            schema.limits, schema._schema, document, operation_name, variable_values, context_value
        )
        if not errors:
            errors = documents.validation(
                schema.validated,
                query,
                lambda: validate_document(schema._schema, document, schema.validation_rules),
            )
        if errors:
            return _refused(schema, errors)
        result = execute(
            schema._schema,
            document,
            root_value=root_value,
            variable_values=variable_values,
            operation_name=operation_name,
            context_value=context_value,
            is_awaitable=_is_awaitable,
            executor_class=schema.execution_context_class,
            # The extensions wrap no resolver: Strawberry's middleware would be empty.
            operation_extensions=operation_extensions,
        )
        if isawaitable(result):
            result = await result
    except Exception as error:
        return _failed(schema, error)
    if result.errors:  # logged (suggestions cut in production), then shaped (ErrorShapes)
        schema._process_errors(result.errors)
        return ExecutionResult(
            data=result.data, errors=_shaped(schema, result.errors), extensions={}
        )
    # RequestLimits.get_results
    extensions = cost_report(cost, schema.limits) if cost is not None else {}
    return ExecutionResult(data=result.data, errors=result.errors, extensions=extensions)


def _shaped(schema: Schema, errors: list[GraphQLError]) -> list[GraphQLError]:
    return [shape_error(error, suggestions=schema.suggestions) for error in errors]


def _refused(schema: Schema, errors: list[GraphQLError]) -> ExecutionResult:
    """Refused before execution: the errors logged, then shaped."""
    schema._process_errors(errors)
    return PreExecutionError(data=None, errors=_shaped(schema, errors), extensions={})


def _failed(schema: Schema, error: Exception) -> ExecutionResult:
    """An exception of a step itself: logged, and not shaped here (Strawberry reports it
    from outside the extensions); the view shapes it, as every error."""
    errors = [
        error if isinstance(error, GraphQLError) else GraphQLError(str(error), original_error=error)
    ]
    schema._process_errors(errors)
    return PreExecutionError(data=None, errors=errors, extensions={})
