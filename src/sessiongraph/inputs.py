"""Checks for values written to the database, shared by the mutations and the importer.

Each raises ``BadUserInput`` naming the field, so a value the database would
refuse (or store differently on SQLite and PostgreSQL) never reaches it. The names
are the caller's: GraphQL argument paths for the mutations, JSON keys for the importer.

``parse_datetime`` and ``parse_decimal`` are also the DateTime and Decimal scalars'
parse functions: that they raise ``BadUserInput``, never a bare ValueError, is what
keeps bad input the client's mistake (``sessiongraph.graphql.errors.is_unexpected``).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sessiongraph.errors import BadUserInput
from sessiongraph.node_ids import OPERATION_PREFIX

MAX_ID_LENGTH = 128
#: How deeply a stored JSON value (``metadata``, ``toolInput``, ``git``) may nest by
#: default: ``Settings.max_json_depth``.
MAX_JSON_DEPTH = 64
MAX_COUNT = 2**63 - 1  # BIGINT
#: Tool names key the per-session tool usage: PostgreSQL indexes keys of up to ~2,700 bytes.
MAX_TOOL_NAME_LENGTH = 512
#: Money columns are NUMERIC(20, 10): below 10^10, at most 10 decimal places.
MONEY_LIMIT = Decimal(10) ** 10
MONEY_PLACES = 10


def check_id(value: str, field: str) -> str:
    if not value.strip() or len(value) > MAX_ID_LENGTH or not value.isprintable():
        raise BadUserInput(
            f"`{field}` must be 1 to {MAX_ID_LENGTH} printable characters", field=field
        )
    return value


def check_session_id(value: str, field: str) -> str:
    """A new session's id: an id (``check_id``) that no operation's global id can equal."""
    check_id(value, field)
    if value.startswith(OPERATION_PREFIX):
        raise BadUserInput(
            f"`{field}` must not start with {OPERATION_PREFIX!r}: operations' global ids do",
            field=field,
        )
    return value


def check_text(value: str | None, field: str) -> str | None:
    if value is not None and "\x00" in value:
        raise BadUserInput(f"`{field}` must not contain NUL characters", field=field)
    return value


def check_tool_name(value: str | None, field: str) -> str | None:
    """A tool name, or a model name of ``costByModel``: both are keys of stored sums."""
    check_text(value, field)
    if value is not None and len(value) > MAX_TOOL_NAME_LENGTH:
        raise BadUserInput(
            f"`{field}` must be at most {MAX_TOOL_NAME_LENGTH} characters", field=field
        )
    return value


def check_json(value: Any, field: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """A JSON value every database stores alike and every read gives back: no NUL, no
    NaN or infinity, nested at most ``max_depth`` levels (``{}`` and ``[]`` are one,
    ``{"a": []}`` two). A walk with a stack, not recursion: the value may come nested
    deeper than Python recurses."""
    pending: list[tuple[Any, str, int]] = [(value, field, 1)]
    while pending:
        item, at, level = pending.pop()
        if isinstance(item, str):
            check_text(item, at)
        elif isinstance(item, float) and not math.isfinite(item):
            raise BadUserInput(f"`{at}` must not contain NaN or infinity", field=at)
        elif isinstance(item, dict | list):
            if level > max_depth:
                raise BadUserInput(
                    f"`{field}` nests more than {max_depth} levels deep", field=field
                )
            if isinstance(item, dict):
                for key in item:
                    check_text(key, at)
                children = [(child, f"{at}.{key}", level + 1) for key, child in item.items()]
            else:
                children = [(child, f"{at}[{i}]", level + 1) for i, child in enumerate(item)]
            pending.extend(reversed(children))  # in order, as the client wrote them
    return value


def check_count(value: int | None, field: str) -> int | None:
    if value is not None and not 0 <= value <= MAX_COUNT:
        raise BadUserInput(f"`{field}` must be between 0 and {MAX_COUNT}", field=field)
    return value


def check_seconds(value: float | None, field: str) -> float | None:
    if value is not None and (not math.isfinite(value) or value < 0):
        raise BadUserInput(f"`{field}` must be a finite, non-negative number", field=field)
    return value


def check_money(value: Decimal | None, field: str) -> Decimal | None:
    if value is None:
        return None
    in_range = value.is_finite() and 0 <= value < MONEY_LIMIT
    if not in_range or value != value.quantize(Decimal(1).scaleb(-MONEY_PLACES)):
        raise BadUserInput(
            f"`{field}` must be a dollar amount from 0 to below {MONEY_LIMIT:,} "
            f"with at most {MONEY_PLACES} decimal places",
            field=field,
        )
    return value


def parse_datetime(value: object, field: str | None = None) -> datetime:
    """ISO 8601 with ``T`` or a space, in UTC; a value without an offset is taken as UTC."""
    what, named = (f"`{field}`", {"field": field}) if field else ("DateTime", {})
    if not isinstance(value, str):
        raise BadUserInput(f"{what} must be an ISO 8601 string", **named)
    try:
        parsed = datetime.fromisoformat(value.strip())
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadUserInput(
            f"{what} must be an ISO 8601 time in range, e.g. 2026-04-18T08:00:00+00:00; "
            f"got {value!r}",
            **named,
        ) from None


def parse_decimal(value: object, field: str | None = None) -> Decimal:
    """A finite decimal from a string or a number (a string keeps every digit)."""
    what, named = (f"`{field}`", {"field": field}) if field else ("Decimal", {})
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BadUserInput(f"{what} must be a decimal string or a number", **named)
    try:
        parsed = Decimal(str(value))
    except InvalidOperation:
        raise BadUserInput(f"{what} must be a decimal, got {value!r}", **named) from None
    if not parsed.is_finite():
        raise BadUserInput(f"{what} must be finite, got {value!r}", **named)
    return parsed
