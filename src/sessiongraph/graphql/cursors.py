"""Opaque, signed keyset cursors.

A cursor is ``base64url(json) + "." + base64url(hmac)``: the JSON holds the
list it belongs to (kind and order), the sort value and the row id. Anything
that does not verify and parse back into the expected types is a
``BAD_USER_INPUT``, never an exception from the database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

from sessiongraph.db.queries import Keyset
from sessiongraph.errors import BadUserInput
from sessiongraph.graphql.scalars import serialize_decimal

_MAX_CURSOR_LENGTH = 1024


class ValueKind(Enum):
    DATETIME = "datetime"
    DECIMAL = "decimal"
    INT = "int"
    FLOAT = "float"


class CursorCodec:
    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(secret.encode()).digest()

    def encode(self, scope: str, keyset: Keyset) -> str:
        payload = json.dumps(
            [scope, _dump_value(keyset.value), keyset.id], separators=(",", ":")
        ).encode()
        return f"{_b64(payload)}.{_b64(self._sign(payload))}"

    def decode(
        self, cursor: str, *, scope: str, value_kind: ValueKind, id_type: type[str] | type[int]
    ) -> Keyset:
        """The keyset in ``cursor``; ``BadUserInput`` unless it was made for ``scope``."""
        try:
            if len(cursor) > _MAX_CURSOR_LENGTH:
                raise ValueError("too long")
            body, signature = cursor.split(".")
            payload = _unb64(body)
            if not hmac.compare_digest(_unb64(signature), self._sign(payload)):
                raise ValueError("bad signature")
            cursor_scope, raw_value, row_id = json.loads(payload)
            if cursor_scope != scope:
                raise ValueError("made for another list or order")
            if type(row_id) is not id_type or (type(row_id) is int and not _fits_int64(row_id)):
                raise ValueError("bad id")
            return Keyset(value=_load_value(raw_value, value_kind), id=row_id)
        except (ValueError, TypeError, binascii.Error, InvalidOperation):
            raise BadUserInput(
                "Invalid cursor: pass an endCursor or cursor returned by the same "
                "field with the same orderBy",
                argumentName="after",
            ) from None

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:16]


@dataclass(frozen=True, slots=True)
class PageCursors:
    """The cursors of a page's rows, each made only when a client asks for it: most
    nested pages never show one, and signing costs more than reading the row."""

    codec: CursorCodec
    scope: str
    column: str
    """The sort column; with the row's ``id`` it makes the keyset."""
    rows: Sequence[Any]
    """Rows by position (SQLAlchemy's ``Row``) or mappings."""

    def at(self, index: int) -> str:
        row: Any = self.rows[index]
        values = getattr(row, "_mapping", row)  # a Row by position, or a mapping
        return self.codec.encode(self.scope, Keyset(values[self.column], values["id"]))

    def first(self) -> str | None:
        return self.at(0) if self.rows else None

    def last(self) -> str | None:
        return self.at(-1) if self.rows else None

    def all(self) -> list[str]:
        return [self.at(i) for i in range(len(self.rows))]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _dump_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Decimal):
        return serialize_decimal(value)  # the same text whatever scale the database kept
    return value


def _load_value(raw: Any, kind: ValueKind) -> Any:
    if raw is None:
        return None
    if kind is ValueKind.DATETIME and isinstance(raw, str):
        parsed = datetime.fromisoformat(raw)
        if parsed.tzinfo is None:
            raise ValueError("naive datetime")
        return parsed
    # A signed cursor holds what a row held: NaN and infinities included, which
    # PostgreSQL stores and sorts (NaN above every number).
    if kind is ValueKind.DECIMAL and isinstance(raw, str):
        return Decimal(raw)
    if kind is ValueKind.INT and type(raw) is int and _fits_int64(raw):
        return raw
    if kind is ValueKind.FLOAT and type(raw) in (int, float):
        return float(raw)
    raise ValueError("bad value")


def _fits_int64(value: int) -> bool:
    return -(2**63) <= value < 2**63
