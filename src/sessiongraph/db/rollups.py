"""Reading sums from the session rollups instead of the sessions (``sessionStats``).

``session_rollups`` and ``session_model_rollups`` (tables.py, kept by the triggers of
migrations 0003 and 0004) hold, per UTC hour, UTC day and UTC month a session started
in (and one bucket for the sessions without a start), per status and workflow, what
those sessions add up to. Sums are exact, so the sessions of a window add up to the
rollup rows of the units wholly inside it plus the sessions of its ragged edges, each
unit's rows between the edges of the next coarser one:

    [lower ... L_hour ... L_day ... L_month ====== U_month ... U_day ... U_hour ... upper]
     sessions  hour rows  day rows       month rows       day rows  hour rows  sessions

``L_hour`` is the first hour wholly inside the window's lower bounds and ``U_hour``
where the last one wholly inside its upper bounds ends; ``L_day``/``U_day`` the same for
days between them, ``L_month``/``U_month`` for months between those. Every instant of
the window falls in exactly one piece, whatever the bounds (a window inside one hour
is all sessions). The edges are computed in SQL from the bounds, so ``lastSeconds``
slides with the database clock as it does in the filter.

A scope is summed this way (``plan``) when its filter holds, besides bounds on
``startedAt`` at its top level, only conditions on the rollups' dimensions (status and
workflow, nested any way); and its grouping is none, status, workflow, or time buckets
of ``startedAt`` the rollup units fit in (up to months for months at offset 0, up to
days for days and weeks at offset 0, hours for any whole-hour offset). Anything else
reads the sessions.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from sessiongraph.db import filtering
from sessiongraph.db.columns import UTCDateTime
from sessiongraph.db.queries import _FilterShape
from sessiongraph.db.tables import session_model_rollups, session_rollups

Dialect = Literal["sqlite", "postgresql"]
Unit = Literal["hour", "day", "month"]
Operator = Literal["gt", "gte", "lt", "lte"]


@dataclass(frozen=True, slots=True)
class Bound:
    """One bound on ``started_at``: ``operator`` against the bind parameter ``name``
    (a time), or, with ``seconds_ago``, against the database clock that many seconds
    (the parameter) before now."""

    operator: Operator
    name: str
    seconds_ago: bool = False

    @property
    def lower(self) -> bool:
        return self.operator in ("gt", "gte")


@dataclass(frozen=True, slots=True)
class Plan:
    """How a scope's sums are read from the rollups: the bounds of its window, the
    conditions on the dimensions (the filter's, and the flat ``workflowId`` and
    ``statuses``), and the units whose rows fit the buckets asked for, finest first."""

    bounds: tuple[Bound, ...]
    dimensions: filtering.Condition | None
    workflow: bool
    statuses: bool
    units: tuple[Unit, ...]


#: The units of the rollups' dated grains, finest first, and each one's grain.
UNITS: tuple[Unit, ...] = ("hour", "day", "month")
GRAIN: dict[Unit, str] = {"hour": "h", "day": "d", "month": "m"}

#: The rollup columns a dimension condition may read, by session column.
_DIMENSIONS = frozenset({"status", "workflow_id"})


def _on_dimensions(condition: filtering.Condition) -> bool:
    match condition:
        case filtering.Const() | filtering.Status():
            return True
        case filtering.Text(column, _):
            return column in _DIMENSIONS
        case filtering.All(parts) | filtering.AnyOf(parts):
            return all(_on_dimensions(part) for part in parts)
        case filtering.Not(part):
            return _on_dimensions(part)
    return False


def _bounds(within: filtering.Bounds) -> list[Bound]:
    slots: tuple[tuple[Operator, filtering.Slot | None], ...] = (
        ("gt", within.gt),
        ("gte", within.gte),
        ("lt", within.lt),
        ("lte", within.lte),
    )
    found = [Bound(operator, slot.name) for operator, slot in slots if slot is not None]
    if within.last_seconds is not None:
        found.append(Bound("gte", within.last_seconds.name, seconds_ago=True))
    return found


def plan(
    shape: _FilterShape,
    *,
    grouped_by: str = "all",
    bucket_unit: str | None = None,
    bucket_column: str | None = None,
    utc_offset_minutes: int = 0,
) -> Plan | None:
    """The rollup plan of a scope and grouping, or None when the sessions must be read.
    A time series (``bucket_unit``) is bounded by its ``bucket_from``/``bucket_to``."""
    if grouped_by not in ("all", "status", "workflow"):
        return None
    bounds: list[Bound] = []
    units: tuple[Unit, ...] = UNITS
    if bucket_unit is not None:
        if bucket_column != "started_at" or utc_offset_minutes % 60:
            return None
        if bucket_unit == "hour" or utc_offset_minutes:
            units = UNITS[:1]
        elif bucket_unit != "month":
            units = UNITS[:2]
        bounds += [Bound("gte", "bucket_from"), Bound("lt", "bucket_to")]
    if shape.started_after:
        bounds.append(Bound("gte", "started_after"))
    if shape.started_before:
        bounds.append(Bound("lte", "started_before"))
    dimensions: list[filtering.Condition] = []
    if shape.where is not None:
        where = shape.where
        for part in where.parts if isinstance(where, filtering.All) else (where,):
            if isinstance(part, filtering.Within) and part.column == "started_at":
                bounds += _bounds(part.bounds)
            elif _on_dimensions(part):
                dimensions.append(part)
            else:
                return None
    return Plan(
        bounds=tuple(bounds),
        dimensions=filtering.simplify(filtering.All(tuple(dimensions))) if dimensions else None,
        workflow=shape.workflow,
        statuses=bool(shape.statuses),
        units=units,
    )


# -- the dimensions on rollup rows ---------------------------------------------------------------


class _Rollups(filtering.Source):
    """A rollup table's rows as a filter reads sessions: its status and workflow."""

    def __init__(self, table: sa.Table) -> None:
        self.table = table

    def column(self, name: str, dialect: str) -> sa.ColumnElement[Any]:
        if name == "workflow_id":
            return workflow_of(self.table)
        return self.table.c[name]


_SOURCES = {table.name: _Rollups(table) for table in (session_rollups, session_model_rollups)}


def workflow_of(table: sa.Table) -> sa.ColumnElement[Any]:
    """A rollup row's workflow: NULL where the table keeps the empty string."""
    return sa.func.nullif(table.c.workflow_id, "")


def dimension_conditions(plan: Plan, dialect: Dialect, table: sa.Table) -> list[Any]:
    conditions: list[Any] = []
    if plan.workflow:
        conditions.append(table.c.workflow_id == sa.bindparam("workflow_id"))
    if plan.statuses:
        conditions.append(table.c.status.in_(sa.bindparam("statuses", expanding=True)))
    if plan.dimensions is not None:
        conditions.append(filtering.condition(plan.dimensions, dialect, _SOURCES[table.name]))
    return conditions


# -- the pieces of a window ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Span:
    """[``low``, ``high``) of a time column; a missing end is unbounded."""

    low: sa.ColumnElement[Any] | None = None
    high: sa.ColumnElement[Any] | None = None

    def of(self, column: sa.ColumnElement[Any]) -> list[sa.ColumnElement[bool]]:
        conditions = []
        if self.low is not None:
            conditions.append(column >= self.low)
        if self.high is not None:
            conditions.append(column < self.high)
        return conditions


@dataclass(frozen=True, slots=True)
class Pieces:
    """Where a window's sums come from: rollup rows of a grain within a span, and the
    sessions (matching the scope's own conditions) within spans of ``started_at``."""

    rollups: tuple[tuple[str, Span], ...]
    sessions: tuple[Span, ...]


@functools.lru_cache(maxsize=256)
def pieces(plan: Plan, dialect: Dialect) -> Pieces:
    times = _Times(dialect)
    lower = [times.first_hour(b) for b in plan.bounds if b.lower]
    upper = [times.last_hour(b) for b in plan.bounds if not b.lower]
    if not lower and not upper:
        coarsest = GRAIN[plan.units[-1]]
        return Pieces(rollups=((coarsest, Span()), ("u", Span())), sessions=())
    l_hour = times.greatest(lower) if lower else None
    u_hour = times.least(upper) if upper else None
    rollups = _covered(times, Span(l_hour, u_hour), plan.units)
    # A ragged edge lies within one hour: the one before ``L_hour`` and the one from
    # ``U_hour`` (or none, when they cross). Both ends given, so an index range is that
    # hour (SQLite takes the first bounds of a column it finds for its range).
    edges: list[Span] = []
    if l_hour is not None:
        edges.append(Span(times.previous_hour(l_hour), l_hour))
    if u_hour is not None:
        start = times.greatest([u_hour, l_hour]) if l_hour is not None else u_hour
        edges.append(Span(start, times.next(start, "hour")))
    return Pieces(rollups=tuple(rollups), sessions=tuple(edges))


def _covered(times: _Times, span: Span, units: tuple[Unit, ...]) -> list[tuple[str, Span]]:
    """Rows covering ``span`` (its ends on boundaries of ``units[0]``, or open): of the
    coarser units between the first and last boundary of the next unit inside it, and
    of ``units[0]`` from each end to that boundary. When no boundary of the next unit
    lies inside, the inner span is empty and the first edge covers it all."""
    unit, coarser = units[0], units[1:]
    if not coarser:
        return [(GRAIN[unit], span)]
    low, high = span.low, span.high
    inner_low = times.ceil(low, coarser[0]) if low is not None else None
    inner_high = times.floor(high, coarser[0]) if high is not None else None
    rows = _covered(times, Span(inner_low, inner_high), coarser)
    if low is not None and inner_low is not None:
        end = times.least([inner_low, high]) if high is not None else inner_low
        rows.append((GRAIN[unit], Span(low, end)))
    if high is not None and inner_high is not None:
        start = times.greatest([inner_high, inner_low]) if inner_low is not None else inner_high
        rows.append((GRAIN[unit], Span(start, high)))
    return rows


#: A unit's start on SQLite: the leading characters of a stored time, and what follows.
_SQLITE_STARTS: dict[Unit, tuple[int, str]] = {
    "hour": (13, ":00:00.000000"),
    "day": (10, " 00:00:00.000000"),
    "month": (7, "-01 00:00:00.000000"),
}


class _Times:
    """Hour and day boundaries of times in SQL: PostgreSQL's timestamptz, SQLite's
    fixed-width UTC text (``YYYY-MM-DD HH:MM:SS.ffffff``, as UTCDateTime stores it)."""

    #: Above every stored time on SQLite: where a boundary past year 9999 would be.
    _BEYOND = "~"

    def __init__(self, dialect: Dialect) -> None:
        self.sqlite = dialect == "sqlite"
        self.dialect = dialect

    def value(self, bound: Bound) -> sa.ColumnElement[Any]:
        if bound.seconds_ago:
            seconds = sa.bindparam(bound.name, type_=sa.Integer)
            return filtering.seconds_ago(self.dialect, seconds)
        return sa.bindparam(bound.name, type_=UTCDateTime())

    def first_hour(self, bound: Bound) -> sa.ColumnElement[Any]:
        """Where the first hour wholly after a lower bound starts."""
        value = self.value(bound)
        return self.ceil(value, "hour") if bound.operator == "gte" else self.next(value, "hour")

    def last_hour(self, bound: Bound) -> sa.ColumnElement[Any]:
        """Where the last hour wholly before an upper bound ends (``lt``), or before its
        hour (``lte``: a window ending on the hour still holds that instant)."""
        return self.floor(self.value(bound), "hour")

    def floor(self, value: sa.ColumnElement[Any], unit: Unit) -> sa.ColumnElement[Any]:
        if self.sqlite:
            length, rest = _SQLITE_STARTS[unit]
            return sa.func.substr(value, 1, length).op("||")(rest)
        # Constants written into the SQL, not bound: a generic plan knows them too.
        zone: sa.ColumnElement[str] = sa.literal_column("'UTC'")
        truncated: sa.ColumnElement[str] = sa.literal_column(f"'{unit}'")
        utc = sa.func.timezone(zone, value)
        return sa.func.timezone(zone, sa.func.date_trunc(truncated, utc), type_=UTCDateTime())

    def next(self, value: sa.ColumnElement[Any], unit: Unit) -> sa.ColumnElement[Any]:
        """The start of the unit after the one holding ``value``."""
        if self.sqlite:
            # From the unit's start, in whole seconds: SQLite's date functions round
            # fractions to milliseconds, and a month added to the 31st overflows.
            start = sa.func.substr(self.floor(value, unit), 1, 19)
            later = sa.func.strftime("%Y-%m-%d %H:%M:%S.000000", start, f"+1 {unit}")
            return sa.func.coalesce(later, self._BEYOND)
        return self.floor(value, unit) + sa.literal_column(f"interval '1 {unit}'")

    def previous_hour(self, value: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """The start of the hour before ``value``, a start of an hour."""
        if self.sqlite:
            layout = "%Y-%m-%d %H:00:00.000000"
            earlier = sa.func.strftime(layout, sa.func.substr(value, 1, 19), "-1 hour")
            return sa.func.coalesce(earlier, "")  # before year 0: below every time
        return value - sa.literal_column("interval '1 hour'")

    def ceil(self, value: sa.ColumnElement[Any], unit: Unit) -> sa.ColumnElement[Any]:
        """``value`` if a unit starts there, else the start of the next one.

        On PostgreSQL, the unit after the one holding the microsecond before ``value``:
        ``value`` written once, not three times, so the bounds of a window's coarser
        units (each the ceiling of the last) stay short to plan."""
        if self.sqlite:
            return sa.case((self.floor(value, unit) == value, value), else_=self.next(value, unit))
        return self.next(value - sa.literal_column("interval '1 microsecond'"), unit)

    def greatest(self, values: list[Any]) -> sa.ColumnElement[Any]:
        if len(values) == 1:
            return values[0]  # type: ignore[no-any-return]
        return (sa.func.max if self.sqlite else sa.func.greatest)(*values)

    def least(self, values: list[Any]) -> sa.ColumnElement[Any]:
        if len(values) == 1:
            return values[0]  # type: ignore[no-any-return]
        return (sa.func.min if self.sqlite else sa.func.least)(*values)
