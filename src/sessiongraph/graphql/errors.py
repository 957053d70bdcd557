"""How errors reach the client: every one with an ``extensions.code``, failures masked."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError
from graphql.validation.validate import ValidationAbortedError
from strawberry.extensions import SchemaExtension

from sessiongraph.errors import ApiError, ErrorCode

INTERNAL_MESSAGE = "Internal server error"


def is_unexpected(error: GraphQLError) -> bool:
    """True for a failure of the server during execution, not a client mistake."""
    original = error.original_error
    if isinstance(original, ApiError) or "code" in (error.extensions or {}):
        return False
    # Errors of a document or its variables have no path; a subscription's stream
    # failing has none either, but carries the exception that broke it.
    return error.path is not None or (
        original is not None and not isinstance(original, GraphQLError | ValueError | TypeError)
    )


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
    anything else masked as INTERNAL (the schema logs those with their traceback).
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
    if is_unexpected(error):
        return GraphQLError(
            INTERNAL_MESSAGE,
            nodes=error.nodes,
            path=error.path,
            extensions={"code": ErrorCode.INTERNAL.value},
        )
    # Anything else was raised before execution (syntax, validation, variable
    # coercion): a mistake in the client's document or variables.
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
