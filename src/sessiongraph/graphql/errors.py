"""How errors reach the client: every one with an ``extensions.code``, failures masked."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError
from graphql.validation.validate import ValidationAbortedError
from strawberry.exceptions import MissingQueryError
from strawberry.extensions import SchemaExtension
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError

from sessiongraph.db.errors import DatabaseUnavailable
from sessiongraph.errors import ApiError, ErrorCode, Unavailable

INTERNAL_MESSAGE = "Internal server error"

#: What Strawberry raises about the request itself: no query, no operation of that name,
#: an operation type the transport refuses. Its HTTP view answers them with a 400; over
#: WebSocket they reach the client as errors.
_REQUEST_MISTAKES = (MissingQueryError, CannotGetOperationTypeError, InvalidOperationTypeError)


def is_unexpected(error: GraphQLError) -> bool:
    """True for a failure of the server (masked as INTERNAL and logged), False for a
    mistake of the client (shown as it is).

    An outage of the database (``DatabaseUnavailable``, logged where it is met) is not
    a failure of the server either: it is shown as UNAVAILABLE.

    The client's mistakes are our ``ApiError``s, Strawberry's refusals of a request
    (``_REQUEST_MISTAKES``) and what graphql-core finds wrong with a document or its
    variables: errors without a path and with no other exception beneath them. Bad
    input to a custom scalar is among them wherever graphql-core reports it (a
    literal, a variable, a list item), since the scalars' parse functions raise
    ``BadUserInput``. Any other exception, whatever its type and wherever it was
    raised (a resolver, an extension, a subscription's stream, a parse function), is
    the server's.
    """
    if "code" in (error.extensions or {}):
        return False
    cause = _cause(error)
    if cause is None:
        # graphql-core's own: at a path, a result it could not complete (a null for a
        # non-null field) or a bare GraphQLError from a resolver; else the document's.
        return error.path is not None
    return not isinstance(cause, (ApiError, DatabaseUnavailable, *_REQUEST_MISTAKES))


def _cause(error: GraphQLError) -> Exception | None:
    """The exception beneath ``error`` and any GraphQL errors wrapping it (a variable's
    coercion error wraps the scalar's), if there is one."""
    original = error.original_error
    while isinstance(original, GraphQLError):
        original = original.original_error
    return original


_TOKEN_LIMIT = re.compile(r"Document contains more than (\d+) tokens")
_SUGGESTION = re.compile(r" Did you mean [^?]*\?")


def limit_reached(
    message: str, *, limit: str, maximum: float, requested: int | None = None
) -> GraphQLError:
    """The QUERY_TOO_COMPLEX error of every limit: which one, and the figures."""
    extensions: dict[str, Any] = {
        "code": ErrorCode.QUERY_TOO_COMPLEX.value,
        "limit": limit,
        "maximum": maximum,
    }
    if requested is not None:
        extensions["requested"] = requested
    return GraphQLError(message, extensions=extensions)


def shape_error(error: GraphQLError, *, suggestions: bool = True) -> GraphQLError:
    """The client's view of ``error``: ours as raised, the document's as BAD_USER_INPUT,
    an outage of the database as UNAVAILABLE, anything else masked as INTERNAL (the
    schema logs those with their traceback).
    Without ``suggestions``, "Did you mean ...?" hints about the schema are cut.

    Shaping a shaped error changes nothing.
    """
    if "code" in (error.extensions or {}):
        return error
    if isinstance(error, ValidationAbortedError):  # graphql-core's own work budget
        return GraphQLError(
            "This document is too costly to validate (too many overlapping fields)",
            extensions={
                "code": ErrorCode.QUERY_TOO_COMPLEX.value,
                "limit": "validationComplexity",
            },
        )
    if isinstance(error, GraphQLSyntaxError) and (found := _TOKEN_LIMIT.search(error.message)):
        maximum = int(found.group(1))
        return limit_reached(
            f"This document has more than {maximum} tokens, the limit",
            limit="maxTokens",
            maximum=maximum,
        )
    if isinstance(_cause(error), DatabaseUnavailable):
        unavailable = Unavailable()
        return GraphQLError(
            unavailable.message,
            nodes=error.nodes,
            path=error.path,
            extensions=unavailable.extensions,
        )
    if is_unexpected(error):
        return GraphQLError(
            INTERNAL_MESSAGE,
            nodes=error.nodes,
            path=error.path,
            extensions={"code": ErrorCode.INTERNAL.value},
        )
    # A mistake in the client's document or variables (syntax, validation, coercion).
    message = error.message if suggestions else _SUGGESTION.sub("", error.message)
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={"code": ErrorCode.BAD_USER_INPUT.value, **(error.extensions or {})},
    )


class ErrorShapes(SchemaExtension):
    """Shapes the errors of every result, over HTTP and over WebSocket alike."""

    def on_operation(self) -> Iterator[None]:
        yield
        self._shape(self.execution_context.result)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        self._shape(result)
        yield

    def _shape(self, result: Any) -> None:
        errors = getattr(result, "errors", None)
        if errors:
            suggestions = getattr(self.execution_context.schema, "suggestions", True)
            result.errors = [shape_error(e, suggestions=suggestions) for e in errors]
