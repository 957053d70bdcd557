"""WebSocket messages read as request bodies are: the same size and nesting limits, the
same strict JSON (``guard.message_value``), before Strawberry's handler sees them."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import NonTextMessageReceived

from sessiongraph.config import Settings
from sessiongraph.guard import message_value
from sessiongraph.jsontext import Refused, without_surrogates

#: The longest close reason a WebSocket close frame carries, in bytes.
_MAX_REASON_BYTES = 123


@dataclass(frozen=True, slots=True)
class RefusedMessage:
    """What the adapter hands on in place of a message it refused."""

    #: Completes "The message ...".
    reason: str
    #: The id of the subscribe message it was, when that can still be read (a lone
    #: surrogate refuses a message that is JSON otherwise): the refusal is then that
    #: operation's error, as an HTTP request's would be; else the connection closes.
    operation_id: str | None

    @property
    def close_reason(self) -> str:
        text = f"The message {self.reason}"
        return text.encode()[:_MAX_REASON_BYTES].decode(errors="ignore")


class CheckedWebSocketAdapter(ASGIWebSocketAdapter):
    """Strawberry's ASGI adapter, its messages decoded by ``message_value``."""

    async def iter_json(self, *, ignore_parsing_errors: bool = False) -> AsyncGenerator[Any, None]:
        settings: Settings = self.view.settings  # type: ignore[attr-defined]
        try:
            while self.ws.application_state != WebSocketState.DISCONNECTED:
                try:
                    text = await self.ws.receive_text()
                except KeyError as error:  # a binary frame, as Strawberry's adapter reads it
                    raise NonTextMessageReceived from error
                try:
                    value = message_value(text, settings)
                except Refused as refused:
                    yield RefusedMessage(refused.reason, _operation_id(text, refused, settings))
                    continue
                yield value
        except WebSocketDisconnect:
            pass


def _operation_id(text: str, refused: Refused, settings: Settings) -> str | None:
    if not refused.surrogate:
        return None
    try:
        message = message_value(without_surrogates(text), settings)
    except Refused:
        return None
    if isinstance(message, dict) and message.get("type") == "subscribe":
        operation_id = message.get("id")
        return operation_id if isinstance(operation_id, str) else None
    return None
