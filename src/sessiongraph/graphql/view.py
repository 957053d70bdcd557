"""The HTTP/WebSocket view: a Strawberry ASGI app with our context and error shapes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar, cast

import orjson
from cross_web import HTTPException
from graphql import GraphQLError, OperationDefinitionNode, OperationType
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError, MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.http.types import HTTPMethod
from strawberry.schema import BaseSchema
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    Message,
    NextMessage,
    SubscribeMessage,
)
from strawberry.types import ExecutionResult
from strawberry.types.execution import SubscriptionExecutionResult
from strawberry.types.graphql import OperationType as StrawberryOperationType
from strawberry.types.unset import UNSET, UnsetType

from sessiongraph.auth import Access, Authenticator
from sessiongraph.config import Settings
from sessiongraph.errors import ErrorCode
from sessiongraph.graphiql.page import is_page_request, page
from sessiongraph.graphql import compat, time_limit
from sessiongraph.graphql.context import Context
from sessiongraph.graphql.documents import operation_to_run, parsed
from sessiongraph.graphql.errors import limit_reached, shape_error
from sessiongraph.graphql.limits import requested_nodes
from sessiongraph.graphql.persisted import PersistedQueries, PersistedQueryError
from sessiongraph.graphql.websocket import CheckedWebSocketAdapter, RefusedMessage
from sessiongraph.guard import body_read, decoded_json, error_response, granted, operation_problem
from sessiongraph.lru import LRU
from sessiongraph.media import GraphQLResponse

T = TypeVar("T")

#: What Strawberry logs when it refuses a cross-origin WebSocket, with (origin, host).
_STRAWBERRY_ORIGIN_HINT = "Rejected WebSocket connection from origin"
_ORIGIN_HINT = (
    "Refused a WebSocket from a page on %r (to host %r): sessiongraph accepts WebSockets "
    "from pages of its own origin and of the origins SESSIONGRAPH_CORS_ORIGINS lists; add "
    "the page's origin there, serve the page from the API's origin, or proxy /graphql"
)


class _OriginHint(logging.Filter):
    """Strawberry's hint on a refused cross-origin WebSocket names its own
    ``allowed_origins``, which sessiongraph does not expose: this says what does apply."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith(_STRAWBERRY_ORIGIN_HINT):
            record.msg = _ORIGIN_HINT
        return True


def _install_origin_hint() -> None:
    logger = logging.getLogger("strawberry.ws")
    if not any(isinstance(f, _OriginHint) for f in logger.filters):
        logger.addFilter(_OriginHint())


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

    async def handle_message(self, message: Any) -> None:
        if isinstance(message, RefusedMessage):
            if message.operation_id is not None and self.connection_acknowledged:
                error = _bad_input(f"The message {message.reason}")
                await self._refuse({"id": message.operation_id}, error)  # type: ignore[typeddict-item]
            else:
                await self.handle_invalid_message(message.close_reason)
            return
        if not isinstance(message, dict):  # Strawberry reads message["type"] of anything
            await self.handle_invalid_message("The message must be a JSON object")
            return
        await super().handle_message(cast("Message", message))

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
            name = payload.get("operationName")
            unnamed = operation_name_problem(query, name, self.view.settings.max_tokens)
            if unnamed is not None:
                await self._refuse(message, _bad_input(unnamed))
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
        stopped = await time_limit.within(
            settings.request_timeout_seconds, super().run_operation(operation)
        )
        if isinstance(stopped, GraphQLError):
            result: NextMessage = {
                "id": operation.id,
                "type": "next",
                "payload": {"data": None, "errors": [stopped.formatted]},
            }
            await operation.send_operation_message(result)
            await operation.send_operation_message({"id": operation.id, "type": "complete"})


class GraphQLView(GraphQL[Context, None]):
    """Adds the per-request context, persisted queries, the request time limit and
    WebSocket authentication, and gives every error an ``extensions.code``.

    A query or mutation over HTTP (a JSON POST, or a GET) takes a short way through
    the view (``_http``), doing what Strawberry's ``run`` does for it without its
    request adapter, sub-response and content-type parsing on every request; anything
    else (GraphiQL, other methods and content types, WebSocket), or every request
    with ``lean`` off, goes through ``run``.
    """

    graphql_transport_ws_handler_class = TransportWSHandler
    websocket_adapter_class = CheckedWebSocketAdapter

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
            # A page on a configured CORS origin may open a WebSocket as it may POST;
            # any other cross-origin handshake is refused (403).
            allowed_origins=settings.cors_origins,
        )
        _install_origin_hint()
        self.settings = settings
        self.keepalive_seconds = settings.ws_keepalive_seconds
        self._context_factory = context_factory
        self._authenticator = authenticator
        self.persisted = persisted
        # What ``run`` would do differently (streaming transports, uploads, no queries by
        # GET) is off here, and what ``_http`` relies on is there.
        self._short_way = (
            self.allow_queries_via_get
            and not self.multipart_uploads_enabled
            and not self._stream_transport_map
            and compat.lean_view()
        )
        #: Content-Type header -> its media type, as Strawberry parses it.
        self._media_types: LRU[str, str] = LRU(64)
        if self._short_way:
            from strawberry.http.parse_content_type import parse_content_type

            self._parse_content_type = parse_content_type

    @property
    def lean(self) -> bool:
        """Whether HTTP operations take the short way (``_http``): where the view allows
        it and the schema's ``lean`` is on (which turns both short ways on or off)."""
        return self._short_way and getattr(self.schema, "lean", False) is True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        # strawberry.asgi.GraphQL.__call__ (with ``_http`` for ``run`` on the short way),
        # answering its refusals in the GraphQL error shape rather than in plain text.
        request = Request(scope=scope, receive=receive)
        try:
            response = await (self._http(request) if self.lean else self.run(request))
        except HTTPException as error:
            response = refusal_response(error)
        await response(scope, receive, send)

    async def _http(self, request: Request) -> Response:
        """What ``run`` (strawberry 0.341) answers to an HTTP request, step by step for a
        query or mutation (tests compare the two); anything else is left to ``run``."""
        method: HTTPMethod
        if request.method == "POST" and "application/json" in self._media_type(request):
            body = body_read(request.scope)
            method, data = "POST", self.parse_json(await request.body() if body is None else body)
        elif request.method == "GET" and not self.should_render_graphql_ide(request):
            method, data = "GET", self.parse_query_params(request.query_params)
        else:
            return await self.run(request)
        operations = self._operations(data)
        context = self._context_factory(granted(request.scope))
        result = await self._within_limit(self._execute_all(method, context, operations))
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse]
        if isinstance(result, list):
            response_data = []
            for one in result:
                processed = self._processed(one)
                if one.errors:
                    self._handle_errors(one.errors, processed)
                response_data.append(processed)
        else:
            response_data = self._processed(result)
            if result.errors:
                self._handle_errors(result.errors, response_data)
        return _json_response(response_data)

    def _media_type(self, request: Request) -> str:
        header = request.headers.get("content-type") or ""
        media_type = self._media_types.get(header)
        if media_type is None:
            media_type, _ = self._parse_content_type(header)
            self._media_types.put(header, media_type)
        return media_type

    def _operations(self, data: Any) -> GraphQLRequestData | list[GraphQLRequestData]:
        """The operations of a decoded body or query string, with the checks and the
        refusals of Strawberry's ``parse_http_body``."""
        if isinstance(data, list):
            self._validate_batch_request(data, protocol="http")
            return [
                GraphQLRequestData(
                    query=item.get("query"),
                    variables=item.get("variables"),
                    operation_name=item.get("operationName"),
                    extensions=item.get("extensions"),
                    protocol="http",
                )
                for item in data
            ]
        query = data.get("query")
        if not isinstance(query, str | None):
            raise HTTPException(
                400, "The GraphQL operation's `query` must be a string or null, if provided."
            )
        variables = data.get("variables")
        if not isinstance(variables, dict | None):
            raise HTTPException(
                400, "The GraphQL operation's `variables` must be an object or null, if provided."
            )
        extensions = data.get("extensions")
        if not isinstance(extensions, dict | None):
            raise HTTPException(
                400,
                "The GraphQL operation's `extensions` must be an object or null, if provided.",
            )
        return GraphQLRequestData(
            query=query,
            variables=variables,
            operation_name=data.get("operationName"),
            extensions=extensions,
            protocol="http",
        )

    async def _execute_all(
        self,
        method: HTTPMethod,
        context: Context,
        operations: GraphQLRequestData | list[GraphQLRequestData],
    ) -> ExecutionResult | list[ExecutionResult]:
        """Strawberry's ``execute_operation``, for the operations ``_http`` takes."""
        allowed = StrawberryOperationType.from_http(method)
        if isinstance(operations, list):
            self._check_batch_cost(operations)
            return await asyncio.gather(
                *[self._execute(method, allowed, context, operation) for operation in operations]
            )
        return await self._execute(method, allowed, context, operations)

    def _check_batch_cost(self, operations: list[GraphQLRequestData]) -> None:
        """Refuses a batch whose operations together could return more nodes than the
        cost budget, before any of them runs: the budget is the request's, and each
        operation alone within it does not keep ten of them within it."""
        limits = self.schema.limits  # type: ignore[attr-defined]
        total = 0
        for operation in operations:
            try:
                query = self.persisted.resolve(operation.query, operation.extensions)
                if query is None:
                    continue
                document = parsed(query, self.settings.max_tokens)
            except (PersistedQueryError, GraphQLError):
                continue  # that operation reports it
            total += requested_nodes(
                self.schema._schema,  # type: ignore[attr-defined]
                document,
                operation.operation_name,
                operation.variables,
            )
        if total > limits.cost:
            raise Refusal(
                400,
                f"These {len(operations)} operations could return {total} nodes together, "
                f"over the budget of {limits.cost} for a request: ask for smaller pages "
                "(`first`), or send fewer operations at once",
                ErrorCode.QUERY_TOO_COMPLEX,
                limit="costBudget",
                maximum=limits.cost,
                requested=total,
            )

    async def _execute(
        self,
        method: HTTPMethod,
        allowed: set[StrawberryOperationType],
        context: Context,
        operation: GraphQLRequestData,
    ) -> ExecutionResult:
        """``execute_single``: ours, then Strawberry's."""
        try:
            query = self.persisted.resolve(operation.query, operation.extensions)
        except PersistedQueryError as refused:
            return ExecutionResult(data=None, errors=[refused.error])
        self._check_operation_name(query, operation.operation_name)
        try:
            return await self.schema.execute(
                query,
                root_value=None,
                variable_values=operation.variables,
                context_value=context,
                operation_name=operation.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=operation.extensions,
            )
        except CannotGetOperationTypeError as error:
            raise HTTPException(400, error.as_http_error_reason()) from error
        except InvalidOperationTypeError as error:
            raise HTTPException(400, error.as_http_error_reason(method)) from error
        except MissingQueryError as error:
            raise HTTPException(400, "No GraphQL query found in the request") from error

    async def _within_limit(self, work: Awaitable[T]) -> T | ExecutionResult:
        """``work``, stopped at the request time limit (then a timeout error is the result)."""
        result = await time_limit.within(self.settings.request_timeout_seconds, work)
        if isinstance(result, GraphQLError):
            return ExecutionResult(data=None, errors=[result])
        return result

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        return self._context_factory(granted(request.scope))

    def should_render_graphql_ide(self, request: Any) -> bool:
        return is_page_request(
            request.method, request.query_params, request.headers.get("accept", "")
        )

    async def render_graphql_ide(self, request: Request) -> Response:
        # The app answers the page before the guard (graphiql/page.py); a view reached
        # some other way answers the same page.
        return page()

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

    def _check_operation_name(self, query: str | None, operation_name: str | None) -> None:
        problem = operation_name_problem(query, operation_name, self.settings.max_tokens)
        if problem is not None:
            raise Refusal(400, problem)

    async def execute_operation(
        self,
        request: Request,
        request_adapter: Any,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: Context,
        root_value: None,
        sub_response: Response,
    ) -> ExecutionResult | list[ExecutionResult] | SubscriptionExecutionResult:
        if isinstance(request_data, list):
            self._check_batch_cost(request_data)
        return await self._within_limit(
            super().execute_operation(
                request=request,
                request_adapter=request_adapter,
                request_data=request_data,
                context=context,
                root_value=root_value,
                sub_response=sub_response,
            )
        )

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
        self._check_operation_name(query, request_data.operation_name)
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
        response = _json_response(response_data)
        response.headers.raw.extend(sub_response.headers.raw)
        if sub_response.background:
            response.background = sub_response.background
        if sub_response.status_code:
            response.status_code = sub_response.status_code
        return response

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        return self._processed(result)

    def _processed(self, result: ExecutionResult) -> GraphQLHTTPResponse:
        response: GraphQLHTTPResponse = {"data": result.data}
        if result.errors:
            response["errors"] = [shape_error(error).formatted for error in result.errors]
        if result.extensions:
            response["extensions"] = result.extensions
        return response


class Refusal(HTTPException):
    """A request refused before GraphQL runs it, with the error code and extensions it is
    answered with (``refusal_response``)."""

    def __init__(
        self,
        status_code: int,
        message: str,
        code: ErrorCode = ErrorCode.BAD_USER_INPUT,
        *,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(status_code, message)
        self.code = code
        self.headers = headers
        self.extensions = extensions


def refusal_response(error: HTTPException) -> Response:
    """A refusal of the view or of Strawberry's (an ``HTTPException``) in the GraphQL error
    shape, with the status GraphQL over HTTP gives it."""
    if isinstance(error, Refusal):
        return error_response(
            error.status_code, error.reason, error.code, error.headers, **error.extensions
        )
    cause = error.__cause__
    if isinstance(cause, InvalidOperationTypeError):
        if cause.operation_type is StrawberryOperationType.MUTATION:
            return error_response(
                405,
                "Mutations are not run over GET: send them with POST",
                ErrorCode.BAD_USER_INPUT,
                headers={"Allow": "POST"},
            )
        if cause.operation_type is StrawberryOperationType.SUBSCRIPTION:
            return error_response(
                400,
                "Subscriptions are served over WebSocket (graphql-transport-ws) at this "
                "path, not over HTTP",
                ErrorCode.BAD_USER_INPUT,
            )
    code = ErrorCode.BAD_USER_INPUT if error.status_code < 500 else ErrorCode.INTERNAL
    return error_response(error.status_code, error.reason, code)


def operation_name_problem(
    query: str | None, operation_name: str | None, max_tokens: int
) -> str | None:
    """What is wrong with choosing no operation of ``query``, if anything: a document of
    several operations names the one to run (the GraphQL spec's GetOperation), where
    Strawberry would run the first."""
    if operation_name is not None or not query:
        return None
    try:
        document = parsed(query, max_tokens)  # the parse the execution will reuse
    except GraphQLError:
        return None  # the execution reports it
    names = [
        d.name.value if d.name else "an anonymous one"
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    ]
    if len(names) < 2:
        return None
    return (
        f"This document has {len(names)} operations ({', '.join(names)}): name the one "
        "to run in `operationName`"
    )


def _json_response(data: GraphQLHTTPResponse | list[GraphQLHTTPResponse]) -> Response:
    return GraphQLResponse(cast("dict[str, Any] | list[dict[str, Any]]", data), encode=dumps)


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


def _bad_input(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": ErrorCode.BAD_USER_INPUT.value})


def _is_subscription(query: str, operation_name: str | None, max_tokens: int) -> bool:
    try:
        document = parsed(query, max_tokens)  # the parse the execution will reuse
    except GraphQLError:
        return False  # Strawberry reports it
    operation = operation_to_run(document, operation_name)
    return operation is not None and operation.operation is OperationType.SUBSCRIPTION
