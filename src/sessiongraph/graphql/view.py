"""The HTTP/WebSocket view: a Strawberry ASGI app with our context and error shapes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import orjson
from graphql import GraphQLError, OperationType, get_operation_ast
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.schema import BaseSchema
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    NextMessage,
    SubscribeMessage,
)
from strawberry.types import ExecutionResult
from strawberry.types.execution import SubscriptionExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from sessiongraph.auth import Access, Authenticator
from sessiongraph.config import Settings
from sessiongraph.errors import ErrorCode
from sessiongraph.graphql.context import Context
from sessiongraph.graphql.documents import parsed
from sessiongraph.graphql.errors import limit_reached, shape_error
from sessiongraph.graphql.persisted import PersistedQueries, PersistedQueryError
from sessiongraph.guard import decoded_json, granted, operation_problem


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws with keep-alive pings, a fresh context per operation and
    the subscription limit reported with an error code."""

    view: GraphQLView
    #: The context of the connection, made when it opened.
    connection_context: Context

    # Strawberry gives no hook for an operation's context. The handler reads
    # ``self.context`` in two places only (strawberry-graphql 0.341):
    # - ``run_operation``, once per operation it starts, as ``context_value``;
    # - ``handle_connection_init``, which sets ``connection_params`` on it and hands it
    #   to ``on_ws_connect`` (which may set the caller's access).
    # So reading it forks the connection's context: each operation gets its own
    # DataLoader caches. What connection_init touches lives on the
    # ``Caller`` every fork shares, so it reaches later operations through whichever
    # fork it was set on. The alternative, a copy of ``run_operation``, would follow
    # Strawberry's internals further. Tests of a second operation on one socket reading
    # afresh, and of a token sent with connection_init, would notice a change.
    @property
    def context(self) -> Context:
        """A fresh fork of ``connection_context``, for one operation."""
        return self.connection_context.fork()

    @context.setter
    def context(self, value: Context) -> None:  # Strawberry's __init__
        self.connection_context = value

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
            error = limit_reached(
                f"This connection already runs {limit} operations, the most it may run at "
                "once. Complete one or open another connection.",
                limit="subscriptionsPerConnection",
                maximum=limit,
            )
            await self._refuse(message, error)
            return
        if self.connection_acknowledged and message["id"] not in self.operations:
            # Before Strawberry runs it: the same checks as an HTTP request gets.
            payload: Any = message.get("payload")
            if not isinstance(payload, dict):
                await self._refuse(message, _bad_input("`payload` must be a JSON object"))
                return
            problem = operation_problem(payload, self.view.settings.max_query_length)
            if problem is not None:
                await self._refuse(message, problem)
                return
            try:
                query = self.view.persisted.resolve(payload.get("query"), payload.get("extensions"))
            except PersistedQueryError as refused:
                await self._refuse(message, refused.error)
                return
            if query is None:
                await self._refuse(message, _bad_input("`query` is missing"))
                return
            message = {**message, "payload": {**payload, "query": query}}  # type: ignore[typeddict-item]
        await super().handle_subscribe(message)

    async def _refuse(self, message: SubscribeMessage, error: GraphQLError) -> None:
        await self.send_message(
            {"id": message["id"], "type": "error", "payload": [error.formatted]}
        )

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        """Queries and mutations get the request time limit; subscriptions run on."""
        settings = self.view.settings
        if _is_subscription(operation.query, operation.operation_name, settings.max_tokens):
            await super().run_operation(operation)
            return
        limit = settings.request_timeout_seconds
        try:
            async with asyncio.timeout(limit):
                await super().run_operation(operation)
        except TimeoutError:
            result: NextMessage = {
                "id": operation.id,
                "type": "next",
                "payload": {"data": None, "errors": [_timed_out(limit).formatted]},
            }
            await operation.send_operation_message(result)
            await operation.send_operation_message({"id": operation.id, "type": "complete"})


class GraphQLView(GraphQL[Context, None]):
    """Adds the per-request context, persisted queries, the request time limit and
    WebSocket authentication, and gives every error an ``extensions.code``."""

    graphql_transport_ws_handler_class = TransportWSHandler

    def __init__(
        self,
        schema: BaseSchema,
        *,
        settings: Settings,
        context_factory: Callable[[Access | None], Context],
        authenticator: Authenticator,
        persisted: PersistedQueries,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql_enabled else None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(
                seconds=settings.ws_connection_init_timeout_seconds
            ),
            max_subscriptions_per_connection=settings.ws_max_subscriptions,
        )
        self.settings = settings
        self.keepalive_seconds = settings.ws_keepalive_seconds
        self._context_factory = context_factory
        self._authenticator = authenticator
        self.persisted = persisted

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        return self._context_factory(granted(request.scope))

    def should_render_graphql_ide(self, request: Any) -> bool:
        # A GET carrying only a persisted query's hash is an operation, not a browser.
        return "extensions" not in request.query_params and super().should_render_graphql_ide(
            request
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Authenticate at connection_init: the upgrade request's Authorization header, or
        ``Authorization`` (or ``authToken``) in the connection_init payload."""
        if context.caller.access is None:
            params = context.connection_params or {}
            token = params.get("Authorization") or params.get("authorization")
            if token is None and isinstance(params.get("authToken"), str):
                token = f"Bearer {params['authToken']}"
            context.caller.access = self._authenticator.access(
                token if isinstance(token, str) else None
            )
        if context.caller.access is None:
            raise ConnectionRejectionError
        unset: UnsetType = UNSET
        return unset

    async def execute_operation(
        self, *args: Any, **kwargs: Any
    ) -> ExecutionResult | list[ExecutionResult] | SubscriptionExecutionResult:
        limit = self.settings.request_timeout_seconds
        try:
            async with asyncio.timeout(limit):
                return await super().execute_operation(*args, **kwargs)
        except TimeoutError:
            return ExecutionResult(data=None, errors=[_timed_out(limit)])

    async def execute_single(
        self,
        request: Request,
        request_adapter: Any,
        sub_response: Any,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        try:
            query = self.persisted.resolve(request_data.query, request_data.extensions)
        except PersistedQueryError as refused:
            return ExecutionResult(data=None, errors=[refused.error])
        return await super().execute_single(
            request=request,
            request_adapter=request_adapter,
            sub_response=sub_response,
            context=context,
            root_value=root_value,
            request_data=dataclasses.replace(request_data, query=query),
        )

    def decode_json(self, data: str | bytes) -> object:
        # Strawberry decodes the body (and a GET's variables and extensions) here; the
        # guard has decoded them already, strictly, and what it read is reused.
        known = decoded_json()
        if known and data in known:
            return known[data]
        return super().decode_json(data)

    def encode_json(self, data: object) -> str:
        # Text, not bytes: WebSocket messages of graphql-transport-ws are text frames.
        return dumps(data).decode()

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        response = Response(dumps(response_data), media_type="application/json")
        response.headers.raw.extend(sub_response.headers.raw)
        if sub_response.background:
            response.background = sub_response.background
        if sub_response.status_code:
            response.status_code = sub_response.status_code
        return response

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        response: GraphQLHTTPResponse = {"data": result.data}
        if result.errors:
            response["errors"] = [shape_error(error).formatted for error in result.errors]
        if result.extensions:
            response["extensions"] = result.extensions
        return response


def dumps(data: object) -> bytes:
    """JSON with orjson; the standard library for what orjson refuses (integers past
    64 bits in a stored JSON value)."""
    try:
        return orjson.dumps(data)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(
            data, separators=(",", ":"), ensure_ascii=False, default=_fragment_value
        ).encode()


def _fragment_value(value: object) -> object:
    """What JSON the database wrote (an ``orjson.Fragment``) holds, for the stdlib."""
    if isinstance(value, orjson.Fragment):
        return orjson.loads(orjson.dumps(value))
    raise TypeError(f"{type(value).__name__} is not JSON")


def _timed_out(limit: float) -> GraphQLError:
    return limit_reached(
        f"The request ran past the time limit of {limit:g} s and was stopped. "
        "Ask for less, or try again later.",
        limit="requestTimeout",
        maximum=limit,
    )


def _bad_input(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": ErrorCode.BAD_USER_INPUT.value})


def _is_subscription(query: str, operation_name: str | None, max_tokens: int) -> bool:
    try:
        document = parsed(query, max_tokens)  # the parse the execution will reuse
    except GraphQLError:
        return False  # Strawberry reports it
    operation = get_operation_ast(document, operation_name)
    return operation is not None and operation.operation is OperationType.SUBSCRIPTION
