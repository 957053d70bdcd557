"""Checks made before GraphQL sees a request: the token, the body size, the shape of
the JSON, and whether a batch is allowed. Refusals are JSON bodies in the GraphQL
error shape. The JSON is decoded here once; the view reuses what was read.

WebSocket messages go through the same decoding (``message_value``), with the same
limits on size and nesting."""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl

from graphql import GraphQLError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sessiongraph.auth import Access, Authenticator
from sessiongraph.config import Settings
from sessiongraph.errors import ErrorCode
from sessiongraph.graphql.errors import limit_reached
from sessiongraph.jsontext import Refused, decode
from sessiongraph.media import GraphQLResponse

#: The ASGI scope key the granted ``Access`` travels under.
ACCESS_KEY = "sessiongraph.access"
#: The ASGI scope key the body read travels under (the view need not read it again).
BODY_KEY = "sessiongraph.body"

#: The JSON texts the guard decoded for the request it is passing on (the body, a GET's
#: ``variables`` and ``extensions``), each with its value, so the view does not decode
#: them again (``GraphQLView.decode_json``). A context variable: Strawberry decodes
#: with no request at hand.
_decoded: ContextVar[Mapping[str | bytes, Any]] = ContextVar(
    "sessiongraph.decoded", default=MappingProxyType({})
)

#: orjson reads an integer past 64 bits as a float, the standard library (Strawberry's
#: decoder, and so the API's contract) as the integer: text with a run of 19 digits is
#: left to the view to decode again. (Found by making every digit a 0 and searching
#: for nineteen: a regular expression takes longer than decoding.)
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19


#: The methods GraphQL over HTTP uses (HEAD is not among them: a GET's answer is its body).
ALLOWED_METHODS = ("GET", "POST")

#: What ``_body`` returns when the client disconnected before its body was complete.
_GONE = b"\0gone"


def is_json(content_type: str | None) -> bool:
    """Whether a Content-Type header is JSON, as Strawberry's view decides it."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return "application/json" in media_type


def error_response(
    status: int, message: str, code: ErrorCode, headers: dict[str, str] | None = None, **extra: Any
) -> GraphQLResponse:
    """A refusal with one error, in the media type the request accepts (``media.py``)."""
    error = {"message": message, "extensions": {"code": code.value, **extra}}
    return GraphQLResponse({"data": None, "errors": [error]}, status, headers)


class RequestGuard:
    def __init__(self, app: ASGIApp, *, settings: Settings, authenticator: Authenticator) -> None:
        self.app = app
        self.settings = settings
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        access = self.authenticator.access(headers.get("authorization"))
        scope[ACCESS_KEY] = access
        if scope["type"] == "websocket":  # the token may also come with connection_init
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ALLOWED_METHODS:
            response = error_response(
                405,
                f"{scope['method']} is not served here: send GraphQL operations with POST "
                "(or queries with GET)",
                ErrorCode.BAD_USER_INPUT,
                headers={"Allow": ", ".join(ALLOWED_METHODS)},
            )
            await response(scope, receive, send)
            return
        if access is None:
            response = error_response(
                401,
                "A valid bearer token is required (Authorization: Bearer <token>)",
                ErrorCode.UNAUTHENTICATED,
                headers={"WWW-Authenticate": 'Bearer realm="sessiongraph"'},
            )
            await response(scope, receive, send)
            return
        if scope["method"] == "POST" and not is_json(headers.get("content-type")):
            response = error_response(
                415,
                "Send the operation as JSON, with Content-Type: application/json",
                ErrorCode.BAD_USER_INPUT,
            )
            await response(scope, receive, send)
            return
        body = await self._body(scope, receive, headers)
        if body is _GONE:
            return  # nobody to answer, and only part of a body: nothing runs
        if body is None:
            response = error_response(
                413,
                f"The request body is over {self.settings.max_body_bytes} bytes",
                ErrorCode.QUERY_TOO_COMPLEX,
                limit="maxBodyBytes",
                maximum=self.settings.max_body_bytes,
            )
            await response(scope, receive, send)
            return
        decoded: dict[str | bytes, Any] = {}
        refusal = self._refusal(scope, body, headers, decoded)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        scope[BODY_KEY] = body
        token = _decoded.set(decoded)
        try:
            await self.app(scope, _replay(body, receive), send)
        finally:
            _decoded.reset(token)

    async def _body(self, scope: Scope, receive: Receive, headers: Headers) -> bytes | None:
        """The whole body, or None when it is over the limit (read no further than that);
        ``_GONE`` when the client went away (or was sent away) before it sent it all."""
        limit = self.settings.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return _GONE
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _refusal(
        self, scope: Scope, body: bytes, headers: Headers, decoded: dict[str | bytes, Any]
    ) -> GraphQLResponse | None:
        """Whatever is wrong with the request's operations, as a response; None if nothing.

        The JSON is read here with the strictness of RFC 8259 (UTF-8, bounded nesting),
        so the GraphQL view only ever sees well-formed operations; what it decoded goes
        into ``decoded``.
        """
        depth = self.settings.max_request_json_depth
        if scope["method"] == "GET":
            params = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            operation: dict[str, Any] = dict(params)
            for name in ("variables", "extensions"):
                if name in params:
                    try:
                        text = params[name]
                        operation[name] = _loads(text, decoded, depth) if text else None
                    except Refused as refused:
                        return _bad(f"`{name}` {refused.reason}")
            return self._operation_refusal(operation)
        try:
            data = _loads(body, decoded, depth)
        except Refused as refused:
            return _bad(f"The request body {refused.reason}")
        if isinstance(data, dict):
            return self._operation_refusal(data)
        if not isinstance(data, list):
            return _bad("The request body must be a JSON object")
        if not self.settings.batching:
            return _bad(
                "Batched requests are off: send one operation per request "
                "(or set SESSIONGRAPH_BATCHING=true)"
            )
        maximum = self.settings.max_batch_operations
        if len(data) > maximum:
            return error_response(
                400,
                f"This batch has {len(data)} operations; the limit is {maximum}",
                ErrorCode.QUERY_TOO_COMPLEX,
                limit="maxBatchOperations",
                maximum=maximum,
                requested=len(data),
            )
        if not all(isinstance(item, dict) for item in data):
            return _bad("Each operation of a batch must be a JSON object")
        for item in data:
            refusal = self._operation_refusal(item)
            if refusal is not None:
                return refusal
        return None

    def _operation_refusal(self, operation: dict[str, Any]) -> GraphQLResponse | None:
        problem = operation_problem(operation, self.settings.max_query_length)
        if problem is None:
            return None
        extensions = dict(problem.extensions or {})
        code = ErrorCode(extensions.pop("code"))
        return error_response(400, problem.message, code, **extensions)


def operation_problem(operation: dict[str, Any], max_query_length: int) -> GraphQLError | None:
    """What is wrong with the fields of one operation (HTTP or WebSocket), if anything."""
    query = operation.get("query")
    if query is not None and not isinstance(query, str):
        return _problem("`query` must be a string")
    for name in ("variables", "extensions"):
        value = operation.get(name)
        if value is not None and not isinstance(value, dict):
            return _problem(f"`{name}` must be a JSON object")
    operation_name = operation.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        return _problem("`operationName` must be a string")
    if query is not None and len(query) > max_query_length:
        return limit_reached(
            f"The query is {len(query)} characters long; the limit is {max_query_length}",
            limit="maxQueryLength",
            maximum=max_query_length,
            requested=len(query),
        )
    return None


def _problem(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": ErrorCode.BAD_USER_INPUT.value})


def _bad(message: str) -> GraphQLResponse:
    return error_response(400, message, ErrorCode.BAD_USER_INPUT)


def _loads(text: str | bytes, decoded: dict[str | bytes, Any], max_depth: int) -> Any:
    """The strict decoding of ``text`` (``jsontext.decode``: ``Refused`` when it is not
    JSON, not UTF-8, or nested more than ``max_depth``); the value goes into ``decoded``
    when the standard library would read the same from ``text``."""
    value = decode(text, max_depth=max_depth)
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    if _LONG_NUMBER not in raw.translate(_DIGITS_TO_ZERO):
        decoded[text] = value
    return value


def message_value(text: str, settings: Settings) -> Any:
    """A WebSocket message's value, checked as a request body is (its size, then
    ``_loads``), and read as Strawberry reads a body: ``Refused`` if it is not one."""
    limit = settings.max_body_bytes
    if len(text) > limit or (
        len(text) * 4 > limit and len(text.encode("utf-8", "surrogatepass")) > limit
    ):
        raise Refused(f"is over {limit} bytes")
    decoded: dict[str | bytes, Any] = {}
    value = _loads(text, decoded, settings.max_request_json_depth)
    # Past 64 bits, integers are read as the standard library reads them, as in a body:
    # safely, the nesting is bounded by now.
    return value if decoded else json.loads(text)


def decoded_json() -> Mapping[str | bytes, Any]:
    """The JSON texts of the request being handled the guard decoded, with their values."""
    return _decoded.get()


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def body_read(scope: Scope) -> bytes | None:
    """The body of the request, as the guard read it; nothing when it did not."""
    body: bytes | None = scope.get(BODY_KEY)
    return body


def granted(scope: Scope) -> Access | None:
    """What the guard granted; nothing when the guard did not see the request."""
    access: Access | None = scope.get(ACCESS_KEY)
    return access
