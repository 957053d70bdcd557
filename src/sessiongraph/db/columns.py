"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler


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
    a value is read back as the plain string instead of failing the whole row.
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
            return json.loads(value)
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
