"""The HTTP/WebSocket view: a Strawberry ASGI app with our context and error shapes."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from sessiongraph.errors import ErrorCode
from sessiongraph.graphql.context import Context
from sessiongraph.graphql.errors import INTERNAL_MESSAGE, is_unexpected


class GraphQLView(GraphQL[Context, None]):
    """Adds the per-request context and gives every error an ``extensions.code``."""

    def __init__(self, *args: Any, context_factory: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._context_factory = context_factory

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        context: Context = self._context_factory()
        return context

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        response: GraphQLHTTPResponse = {"data": result.data}
        if result.errors:
            response["errors"] = [format_error(error) for error in result.errors]
        if result.extensions:
            response["extensions"] = result.extensions
        return response


def format_error(error: GraphQLError) -> dict[str, Any]:
    """The client's view of an error: ours as raised, the document's as BAD_USER_INPUT,
    anything else masked as INTERNAL (the schema logs those with their traceback)."""
    if is_unexpected(error):
        masked = GraphQLError(
            INTERNAL_MESSAGE,
            nodes=error.nodes,
            path=error.path,
            extensions={"code": ErrorCode.INTERNAL.value},
        )
        return dict(masked.formatted)
    # Anything else was raised before execution (syntax, validation, variable
    # coercion): a mistake in the client's document or variables.
    formatted = dict(error.formatted)
    formatted["extensions"] = {"code": ErrorCode.BAD_USER_INPUT.value, **(error.extensions or {})}
    return formatted
