"""The custom scalars: DateTime (always with an offset, in UTC), Decimal (a string), BigInt
(an integer a JSON number holds exactly), JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NewType

import strawberry
from strawberry.types.scalar import ScalarDefinition

from sessiongraph.errors import BadUserInput
from sessiongraph.inputs import parse_datetime, parse_decimal


def serialize_datetime(value: datetime) -> str:
    if value.tzinfo is UTC:  # as the database columns read back
        return value.isoformat()
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def serialize_decimal(value: Decimal) -> str:
    """Plain notation without trailing zeros: ``0.0438``, ``12.5``, ``100``, ``0``."""
    text = format(value.normalize(), "f")
    return "0" if text in {"-0", ""} else text


def _identity(value: Any) -> Any:
    return value


def serialize_json(value: Any) -> Any:
    """Objects with their keys sorted: PostgreSQL's JSONB keeps no key order, so
    sorting is what makes every database give the same answer."""
    if isinstance(value, dict):
        return {key: serialize_json(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [serialize_json(item) for item in value]
    return value


#: Any JSON value; annotate fields with it and the schema maps it to the JSON scalar.
JSON = NewType("JSON", object)
#: Sums that outgrow Int; annotate fields with it for the BigInt scalar.
BigInt = NewType("BigInt", int)
#: JSON numbers are exact up to here: a larger value is an error, never a rounded number.
MAX_BIG_INT = 2**53 - 1


def parse_big_int(value: Any) -> int:
    if type(value) is not int or not -MAX_BIG_INT <= value <= MAX_BIG_INT:
        raise BadUserInput(f"BigInt must be an integer within ±(2^53-1), got {value!r}")
    return value


def serialize_big_int(value: int) -> int:
    if type(value) is not int or not -MAX_BIG_INT <= value <= MAX_BIG_INT:
        raise ValueError(f"BigInt cannot represent {value!r}: beyond ±(2^53-1)")
    return value


SCALAR_MAP: dict[object, ScalarDefinition] = {
    datetime: strawberry.scalar(
        name="DateTime",
        description=(
            "An instant in ISO 8601 with a T and an explicit UTC offset, e.g. "
            "2026-04-18T08:00:00.123456+00:00. Input without an offset is taken as UTC."
        ),
        serialize=serialize_datetime,
        parse_value=parse_datetime,
    ),
    Decimal: strawberry.scalar(
        name="Decimal",
        description='An exact decimal number, serialized as a string, e.g. "0.0438".',
        serialize=serialize_decimal,
        parse_value=parse_decimal,
    ),
    BigInt: strawberry.scalar(
        name="BigInt",
        description="Integer up to 2^53-1, serialized as a JSON number (sums that outgrow Int).",
        serialize=serialize_big_int,
        parse_value=parse_big_int,
    ),
    JSON: strawberry.scalar(
        name="JSON",
        description="Any JSON value, as stored (object keys in sorted order).",
        serialize=serialize_json,
        parse_value=_identity,
    ),
}
