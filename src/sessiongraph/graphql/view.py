"""The HTTP/WebSocket view: a Strawberry ASGI app with our context and error shapes."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage
from strawberry.types import ExecutionResult

from sessiongraph.errors import ErrorCode
from sessiongraph.graphql.context import Context
from sessiongraph.graphql.errors import shape_error


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws with keep-alive pings, a fresh context per operation and
    the subscription limit reported with an error code."""

    view: GraphQLView

    # Strawberry reads ``self.context`` once per operation it starts: handing out
    # a fork there keeps one operation's DataLoader cache from serving another.
    @property
    def context(self) -> Context:
        return self._connection_context.fork()

    @context.setter
    def context(self, value: Context) -> None:
        self._connection_context = value

    async def handle(self) -> None:
        pinger = asyncio.create_task(self._keep_alive())
        try:
            await super().handle()
        finally:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinger

    async def _keep_alive(self) -> None:
        interval = self.view.keepalive_seconds
        if not interval:
            return
        with contextlib.suppress(WebSocketDisconnected):
            while True:
                await asyncio.sleep(interval)
                if self.connection_acknowledged:
                    await self.send_message({"type": "ping"})

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        limit = self.max_subscriptions_per_connection
        if (
            self.connection_acknowledged
            and limit is not None
            and message["id"] not in self.operations
            and len(self.operations) >= limit
        ):
            error = GraphQLError(
                f"This connection already runs {limit} operations, the most it may run at "
                "once. Complete one or open another connection.",
                extensions={
                    "code": ErrorCode.QUERY_TOO_COMPLEX.value,
                    "limit": "subscriptionsPerConnection",
                    "maximum": limit,
                },
            )
            await self.send_message(
                {"id": message["id"], "type": "error", "payload": [error.formatted]}
            )
            return
        await super().handle_subscribe(message)


class GraphQLView(GraphQL[Context, None]):
    """Adds the per-request context and gives every error an ``extensions.code``."""

    graphql_transport_ws_handler_class = TransportWSHandler

    def __init__(
        self, *args: Any, context_factory: Any, keepalive_seconds: float = 0, **kwargs: Any
    ) -> None:
        kwargs.setdefault("subscription_protocols", (GRAPHQL_TRANSPORT_WS_PROTOCOL,))
        super().__init__(*args, **kwargs)
        self._context_factory = context_factory
        self.keepalive_seconds = keepalive_seconds

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
            response["errors"] = [shape_error(error).formatted for error in result.errors]
        if result.extensions:
            response["extensions"] = result.extensions
        return response
