"""Checks made on /graphql before GraphQL sees a request: the token, the body size,
and whether a batch is allowed. Refusals are JSON bodies in the GraphQL error shape."""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sessiongraph.auth import Access, Authenticator
from sessiongraph.config import Settings
from sessiongraph.errors import ErrorCode

#: The ASGI scope key the granted ``Access`` travels under.
ACCESS_KEY = "sessiongraph.access"


def error_response(
    status: int, message: str, code: ErrorCode, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    error = {"message": message, "extensions": {"code": code.value, **extra}}
    return JSONResponse({"data": None, "errors": [error]}, status_code=status, headers=headers)


class RequestGuard:
    def __init__(self, app: ASGIApp, *, settings: Settings, authenticator: Authenticator) -> None:
        self.app = app
        self.settings = settings
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] != "/graphql":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        access = self.authenticator.access(headers.get("authorization"))
        scope[ACCESS_KEY] = access
        if scope["type"] == "websocket":  # the token may also come with connection_init
            await self.app(scope, receive, send)
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
        body = await self._body(scope, receive, headers)
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
        refusal = self._shape_refusal(body, headers) or self._batch_refusal(body)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _body(self, scope: Scope, receive: Receive, headers: Headers) -> bytes | None:
        """The whole body, or None when it is over the limit (read no further than that)."""
        limit = self.settings.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _shape_refusal(self, body: bytes, headers: Headers) -> JSONResponse | None:
        """A JSON body must be an object (or, batching, an array): GraphQL over HTTP."""
        if not headers.get("content-type", "").startswith("application/json"):
            return None
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return error_response(
                400, "The request body is not UTF-8 text", ErrorCode.BAD_USER_INPUT
            )
        start = body.lstrip()[:1]
        if start in (b"", b"{", b"["):
            return None
        return error_response(
            400, "The request body must be a JSON object", ErrorCode.BAD_USER_INPUT
        )

    def _batch_refusal(self, body: bytes) -> JSONResponse | None:
        if not body.lstrip().startswith(b"["):
            return None
        if not self.settings.batching:
            return error_response(
                400,
                "Batched requests are off: send one operation per request "
                "(or set SESSIONGRAPH_BATCHING=true)",
                ErrorCode.BAD_USER_INPUT,
            )
        try:
            operations = json.loads(body)
        except ValueError:
            return None  # GraphQL answers malformed JSON itself
        if not isinstance(operations, list):
            return None
        if not all(isinstance(operation, dict) for operation in operations):
            return error_response(
                400, "Each operation of a batch must be a JSON object", ErrorCode.BAD_USER_INPUT
            )
        maximum = self.settings.max_batch_operations
        if len(operations) > maximum:
            return error_response(
                400,
                f"This batch has {len(operations)} operations; the limit is {maximum}",
                ErrorCode.QUERY_TOO_COMPLEX,
                limit="maxBatchOperations",
                maximum=maximum,
                requested=len(operations),
            )
        return None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def granted(scope: Scope) -> Access | None:
    access: Access | None = scope.get(ACCESS_KEY, Access.READ_WRITE)
    return access
