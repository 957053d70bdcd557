"""The media types of GraphQL over HTTP, and which one an answer is sent as.

A client that accepts ``application/graphql-response+json`` (the GraphQL-over-HTTP
spec's own type) is answered with it, and then the HTTP status tells what happened: a
request refused before it ran (a document that does not parse or validate, variables
that do not coerce, a limit) is a 4xx without a ``data`` entry; a result, errors at
fields included, is a 200. Every other client, one that sends no ``Accept`` or
``*/*`` included, gets ``application/json`` with 200 for every result of a well-formed
request, as GraphQL over HTTP expects of the legacy type (SPEC §2).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from sessiongraph.errors import ErrorCode

JSON = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json"

#: Limits of a query that stop it while it runs: a result, not a refusal.
_RUNNING_LIMITS = frozenset({"requestTimeout", "statementTimeout"})
#: The status of a request refused (no error at a path, no data) for each error code;
#: a code missing here (UNAVAILABLE, INTERNAL, PERSISTED_QUERY_NOT_FOUND, ...) reports
#: what happened while the request was served, answered 200 with ``"data": null``.
_REFUSAL_STATUS = {
    ErrorCode.BAD_USER_INPUT.value: 400,
    ErrorCode.QUERY_TOO_COMPLEX.value: 400,
    ErrorCode.UNAUTHENTICATED.value: 401,
    ErrorCode.FORBIDDEN.value: 403,
}


@functools.lru_cache(maxsize=64)
def answer_type(accept: str | None) -> str:
    """The media type to answer an ``Accept`` header with: ``application/graphql-
    response+json`` when the client accepts it at least as much as ``application/json``
    (or accepts only it), else ``application/json`` (also for no header, ``*/*``, or
    only types this server does not send: the spec lets a server answer those in the
    legacy type rather than with a 406)."""
    if not accept:
        return JSON
    graphql_response = legacy = 0.0
    for item in accept.split(","):
        media_type, *parameters = (part.strip() for part in item.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media_type = media_type.lower()
        if media_type == GRAPHQL_RESPONSE:
            graphql_response = max(graphql_response, quality)
        elif media_type in (JSON, "application/*", "*/*"):
            legacy = max(legacy, quality)
    return GRAPHQL_RESPONSE if graphql_response > 0 and graphql_response >= legacy else JSON


def accepts_graphql_response(scope: Scope) -> bool:
    """Whether the request of ``scope`` is answered as ``application/graphql-response+json``."""
    for name, value in scope["headers"]:  # one look, on every response: no Headers built
        if name == b"accept":
            return answer_type(value.decode("latin-1")) == GRAPHQL_RESPONSE
    return False


def result_status(response: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> int:
    """The status of a result sent as ``application/graphql-response+json``: 200 for a
    result that has data or an error at a field (or a batch); for one refused before it
    ran, the status its errors' codes give (400 for a document that does not parse or
    validate, or a limit)."""
    if not isinstance(response, Mapping) or response.get("data") is not None:
        return 200
    status = 200
    for error in response.get("errors") or ():
        extensions = error.get("extensions") or {}
        if error.get("path") or extensions.get("limit") in _RUNNING_LIMITS:
            return 200
        refused = _REFUSAL_STATUS.get(str(extensions.get("code")))
        if refused is None:
            return 200
        status = max(status, refused)
    return status


def _encode(content: object) -> bytes:
    return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


class GraphQLResponse(Response):
    """A GraphQL response (a result, a batch of them, or a refusal), sent as the media
    type the request accepts. As ``application/json`` it is sent as made; as
    ``application/graphql-response+json``, a result refused before it ran gets its 4xx
    (``result_status``), and a refusal loses its ``"data": null`` entry (nothing ran).
    The choice is made when the response is sent, where the request is at hand; until
    then body and headers are ``application/json``'s (a WebSocket refused before its
    handshake sends those)."""

    media_type = JSON

    def __init__(
        self,
        result: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        *,
        encode: Callable[[object], bytes] = _encode,
    ) -> None:
        self.result = result
        self.encode = encode
        super().__init__(encode(result), status_code, headers)
        # The body depends on the request's Accept: a cache keeps one per type.
        self.raw_headers.append((b"vary", b"Accept"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and accepts_graphql_response(scope):
            self._as_graphql_response()
        await super().__call__(scope, receive, send)

    def _as_graphql_response(self) -> None:
        if self.status_code == 200:
            self.status_code = result_status(self.result)
        result = self.result
        if isinstance(result, Mapping) and self.status_code >= 400 and "data" in result:
            # a refusal's `"data": null`: nothing ran
            self.body = self.encode({k: v for k, v in result.items() if k != "data"})
        self.raw_headers = [
            (name, value)
            for name, value in self.raw_headers
            if name not in (b"content-length", b"content-type")
        ]
        self.raw_headers += [
            (b"content-length", str(len(self.body)).encode("latin-1")),
            (b"content-type", GRAPHQL_RESPONSE.encode("latin-1")),
        ]
