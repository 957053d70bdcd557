"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import decimal
import json
import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from sessiongraph.jsontext import load_stored


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    PostgreSQL stores ``timestamptz``. SQLite has no date type: values are kept
    as fixed-width UTC text (``2026-04-18 08:00:00.000000``), which sorts in time
    order and parses back with the C-speed ``datetime.fromisoformat``. A naive
    value is taken to be UTC already.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(26))
        return dialect.type_descriptor(self.impl)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # Fixed width, zero-padded years included, so text order is time order.
            return value.replace(tzinfo=None).isoformat(" ", "microseconds")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.__class__ is datetime and value.tzinfo is UTC:
            return value  # as PostgreSQL's driver reads it on a UTC connection
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


class database_clock(sa.sql.functions.FunctionElement[datetime]):
    """The database server's current time, as a ``UTCDateTime`` column stores it.

    PostgreSQL: ``clock_timestamp()``, the time the expression is evaluated (not the
    transaction's start, as ``now()``): an UPDATE evaluates it once it holds the row, so
    writes that follow one another on a row get stamps that follow one another too.
    SQLite: its own clock (milliseconds) in the fixed-width text ``UTCDateTime`` writes.
    """

    type = UTCDateTime()
    name = "database_clock"
    inherit_cache = True


@compiles(database_clock, "postgresql")
def _clock_on_postgresql(_element: database_clock, _compiler: SQLCompiler, **_kw: Any) -> str:
    return "clock_timestamp()"


@compiles(database_clock, "sqlite")
def _clock_on_sqlite(_element: database_clock, _compiler: SQLCompiler, **_kw: Any) -> str:
    return "(strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')"


class JSONDocument(sa.TypeDecorator[Any]):
    """A JSON value: JSONB on PostgreSQL, JSON text on SQLite. Python None is SQL NULL.

    SQLite cannot stop another writer from storing text that is not JSON; such
    a value is read back as the plain string instead of failing the whole row. A value
    nested too deeply to read back is a placeholder (``jsontext.load_stored``, which
    the engine gives PostgreSQL's driver too).
    """

    impl = sa.JSON(none_as_null=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB(none_as_null=True))
        return dialect.type_descriptor(sa.Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        if value is sa.JSON.NULL:
            return "null"
        return json.dumps(value, ensure_ascii=False)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if not isinstance(value, str) or dialect.name == "postgresql":
            return value
        try:
            return load_stored(value)
        except ValueError:
            return value


#: Ids compare byte-wise on every database, so prefix ranges match prefixes exactly.
Identifier = sa.String(128).with_variant(postgresql.VARCHAR(128, collation="C"), "postgresql")


class Money(sa.TypeDecorator[Decimal]):
    """US dollars: exact NUMERIC on PostgreSQL, a double on SQLite.

    SQLite has no decimal type; a double holds every cost we store (well under
    15 significant digits), and its shortest repr reads back as the decimal
    that was written.
    """

    impl = sa.Numeric(20, 10, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.Float())
        return dialect.type_descriptor(self.impl)

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        return float(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, float):
            return Decimal(repr(value))
        return Decimal(value)


#: Column values of money have 10 decimal places and stay below 10^10 dollars.
_MONEY_PLACES = Decimal(1).scaleb(-10)
_MONEY_CLAMP = Decimal(10) ** 11
_WIDE = decimal.Context(prec=60, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)


class MoneyBound(sa.TypeDecorator[Decimal]):
    """A decimal bound on a money column, exact on either database.

    First the bound is moved onto the columns' grid (10 decimal places, magnitude
    clamped) without changing which stored values meet it, so PostgreSQL never gets an
    extreme NUMERIC. On SQLite, where money is a double read back as the decimal of its
    shortest repr (``Money``), it then becomes the double bound that the same doubles
    meet: the decimals of doubles are ordered as the doubles are.
    """

    # Unconstrained: a bound may lie beyond what the column's NUMERIC(20, 10) holds.
    impl = sa.Numeric()
    cache_ok = True

    def __init__(self, operator: str) -> None:
        super().__init__()
        self.operator = operator

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.Float())
        return dialect.type_descriptor(self.impl)

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        bound = on_money_grid(value, self.operator)
        if dialect.name == "sqlite":
            return double_bound(bound, self.operator)
        return bound


def on_money_grid(value: Decimal, operator: str) -> Decimal:
    """A bound of at most 10 decimal places and magnitude 10^11 that the values of a money
    column (10 places, below 10^10) meet exactly when they meet ``value``."""
    value = max(-_MONEY_CLAMP, min(_MONEY_CLAMP, value))
    floor = value.quantize(_MONEY_PLACES, rounding=decimal.ROUND_FLOOR, context=_WIDE)
    if floor == value:
        return floor
    # v > x and v <= x hold for grid values v exactly as for x's floor; v >= x and v < x
    # exactly as for its ceiling.
    return floor if operator in ("gt", "lte") else floor + _MONEY_PLACES


def double_bound(value: Decimal, operator: str) -> float:
    """The double ``b`` such that a double ``d`` meets ``d <operator> b`` exactly when the
    decimal of its shortest repr meets ``<operator> value``."""
    nearest = float(value)  # finite: the bound is on the money grid
    written = Decimal(repr(nearest))
    if operator == "gte" and written < value:
        return math.nextafter(nearest, math.inf)
    if operator == "gt" and written > value:
        return math.nextafter(nearest, -math.inf)
    if operator == "lte" and written > value:
        return math.nextafter(nearest, -math.inf)
    if operator == "lt" and written < value:
        return math.nextafter(nearest, math.inf)
    return nearest
