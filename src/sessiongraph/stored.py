"""Reading stored JSON leniently: a value of the wrong shape reads as null, never fails.

Stored JSON comes from many writers (imports of the REST API's data, older
versions, other tools on the same database); a read must survive what any of
them left there. The write path uses ``tool_input_object`` too, so that what is
stored is what a read gives back.
"""

from __future__ import annotations

import json
from typing import Any


def as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def as_int(value: Any) -> int | None:
    """An integer that fits GraphQL's Int, from an int, an integral float or a numeric string."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if -(2**31) <= number < 2**31 else None


#: GraphQL's Int: 32 bits, signed.
INT_MIN, INT_MAX = -(2**31), 2**31 - 1


def saturated_int(value: Any) -> Any:
    """A stored count as an ``Int`` field gives it: beyond the Int's range, its nearest
    bound (2,147,483,647 for more), so that the field, and the page holding it, never
    fail. Writes refuse such counts; a row SQL wrote may still hold one. Anything else
    (None, an int in range) as it is."""
    if type(value) is int and not INT_MIN <= value <= INT_MAX:
        return INT_MAX if value > 0 else INT_MIN
    return value


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def as_object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def tool_input_object(stored: Any) -> dict[str, Any] | None:
    """Tool input as a JSON object; anything else stored is kept as ``{"raw": text}``."""
    if stored is None or isinstance(stored, dict):
        return stored
    return {"raw": stored if isinstance(stored, str) else json.dumps(stored)}
