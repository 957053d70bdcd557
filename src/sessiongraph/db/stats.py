"""Aggregates over the sessions a filter matches (``sessionStats``, SPEC §5).

Every aggregate is computed per *key* of a ``Grouping``: one key for all the matching
sessions, a group of ``groupBy`` (workflow, status, provider, model, phase, repo), or
a time bucket of ``timeSeries``. Each function runs one statement whatever the number
of sessions, groups or buckets, and both databases give the same answers:

- Money is summed exactly: PostgreSQL sums its NUMERIC; SQLite, which stores a cost as
  a double, sums integer units of 10^-10 dollars (the column's scale) rounded from
  each double, never doubles.
- Percentiles are continuous (``lo + t·(hi - lo)`` between the two closest ranks, as
  PostgreSQL's ``percentile_cont``): each database returns the values at the ranks
  that bound them, found in integer arithmetic, and Python interpolates, so both
  interpolate alike. Float aggregates are rounded to 6 places.
- Mean durations come from an exact sum: each duration in integer nanoseconds (the same
  truncation of the same double on both databases), summed as integers. A duration
  that is not a number below 10^9 seconds in size (PostgreSQL can store NaN and
  infinities) counts as unknown, like NULL.
- Keys order byte-wise (``COLLATE "C"`` on PostgreSQL, SQLite's default).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Row, RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from sessiongraph.db import filtering, rollups
from sessiongraph.db.queries import (
    SessionCriteria,
    _FilterShape,
    _rows,
    _session_conditions,
    _session_params,
)
from sessiongraph.db.tables import (
    SESSION_STATUSES,
    session_model_rollups,
    session_rollups,
    session_tools,
    sessions,
    workflows,
)

#: A cost's scale (``Money`` is NUMERIC(20, 10)): SQLite sums costs in these units.
COST_UNITS = 10**10
#: The percentiles ``DurationStats`` reports, in hundredths.
PERCENTILES = (50, 90, 95, 99)
#: Decimal places of float aggregates: the same text from both databases.
FLOAT_PLACES = 6

Dialect = Literal["sqlite", "postgresql"]
#: What sessions are grouped by: nothing (one key, None), a column, repo entries, or
#: the time bucket of a timestamp column.
GroupKind = Literal["all", "workflow", "status", "agent_provider", "agent_model", "phase", "repo"]
BucketUnit = Literal["hour", "day", "week", "month"]
TimeColumn = Literal["started_at", "completed_at"]


@dataclass(frozen=True)
class Scope:
    """The sessions an aggregate is over: the filter's shape and its values."""

    shape: _FilterShape
    params: Mapping[str, Any]

    @staticmethod
    def of(criteria: SessionCriteria, dialect: str) -> Scope:
        return Scope(_FilterShape.of(criteria, dialect), _session_params(criteria))


@dataclass(frozen=True, slots=True)
class Buckets:
    """Time buckets of ``column``: ``unit``s starting at local boundaries for a fixed
    UTC offset (parameter ``utc_offset_minutes``), over [``bucket_from``, ``bucket_to``)."""

    unit: BucketUnit
    column: TimeColumn


@dataclass(frozen=True, slots=True)
class Grouping:
    kind: GroupKind = "all"
    buckets: Buckets | None = None


ALL = Grouping()


@dataclass(frozen=True, slots=True)
class Totals:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_read_tokens: int = 0
    total_tokens: int = 0
    total_cost_usd: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Durations:
    """Over the sessions with a (finite) duration."""

    count: int = 0
    avg: float | None = None
    min: float | None = None
    max: float | None = None
    #: percentile (in hundredths) -> seconds, when asked for
    percentiles: Mapping[int, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Aggregate:
    """What one key's sessions add up to."""

    count: int
    totals: Totals
    durations: Durations
    #: the workflow's name, for workflow groups
    name: str | None = None


# -- the keyed rows ------------------------------------------------------------------------


def _dialect(engine: AsyncEngine) -> Dialect:
    return "postgresql" if engine.dialect.name == "postgresql" else "sqlite"


def _repo_join(dialect: Dialect) -> tuple[sa.FromClause, sa.ColumnElement[Any]]:
    """``sessions`` joined to each of its repository entries, normalized as the ``repo``
    filter normalizes them (``filtering.repo_entries``); a session without entries comes
    once, with a NULL entry. Duplicates are removed by the caller."""
    entries = filtering.repo_entries(sessions.c.repos, dialect)
    return sessions.outerjoin(entries.table, sa.and_(*entries.where)), entries.entry


def _bucket_start(
    dialect: Dialect, buckets: Buckets, column: sa.ColumnElement[Any] | None = None
) -> sa.ColumnElement[str]:
    """The local start of a timestamp's bucket (the sessions' ``buckets.column``, or
    ``column``), as ``YYYY-MM-DD HH:MM:SS`` text."""
    if column is None:
        column = sessions.c[buckets.column]
    offset = sa.bindparam("utc_offset_minutes", type_=sa.Integer)
    if dialect == "postgresql":
        local = sa.func.timezone("UTC", column) + sa.func.make_interval(0, 0, 0, 0, 0, offset)
        return sa.func.to_char(sa.func.date_trunc(buckets.unit, local), "YYYY-MM-DD HH24:MI:SS")
    shift = sa.func.printf("%+d minutes", offset)
    # Whole seconds: SQLite's date functions round the fraction to milliseconds, which
    # would move 10:59:59.9999 into the next hour. Buckets start on whole minutes.
    column = sa.func.substr(column, 1, 19)
    layout = {"hour": "%Y-%m-%d %H:00:00", "month": "%Y-%m-01 00:00:00"}
    if buckets.unit == "week":  # back to the Monday on or before the day
        return sa.func.strftime("%Y-%m-%d 00:00:00", column, shift, "-6 days", "weekday 1")
    return sa.func.strftime(layout.get(buckets.unit, "%Y-%m-%d 00:00:00"), column, shift)


def _keyed(
    dialect: Dialect, shape: _FilterShape, grouping: Grouping
) -> tuple[sa.Select[Any], list[sa.ColumnElement[bool]]]:
    """The matching sessions with their ``key`` (a repo group lists a session once per
    entry, sessions without entries under NULL), and the conditions to add."""
    conditions = list(_session_conditions(shape))
    if grouping.buckets is not None:
        column = sessions.c[grouping.buckets.column]
        conditions += [
            column >= sa.bindparam("bucket_from", type_=column.type),
            column < sa.bindparam("bucket_to", type_=column.type),
        ]
        key: sa.ColumnElement[Any] = _bucket_start(dialect, grouping.buckets)
        return sa.select(sessions, key.label("key")), conditions
    if grouping.kind == "repo":
        joined, entry = _repo_join(dialect)
        stmt = sa.select(sessions, entry.label("key")).select_from(joined).distinct()
        return stmt, conditions
    key = sa.null() if grouping.kind == "all" else sessions.c[_COLUMNS[grouping.kind]]
    return sa.select(sessions, key.label("key")), conditions


_COLUMNS = {
    "workflow": "workflow_id",
    "status": "status",
    "agent_provider": "agent_provider",
    "agent_model": "agent_model",
    "phase": "phase_id",
}

_TOKEN_COLUMNS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_tokens",
    "cache_read_tokens",
    "total_tokens",
)


def _summable_cost(dialect: Dialect, cost: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """A session's cost as it is summed: NUMERIC on PostgreSQL, integer units on SQLite
    (what the rollups store)."""
    if dialect == "postgresql":
        return sa.type_coerce(cost, sa.Numeric())
    return sa.cast(sa.func.round(sa.type_coerce(cost, sa.Float()) * COST_UNITS), sa.BigInteger)


def _cost_sum(dialect: Dialect, cost: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """The exact sum of costs: NUMERIC on PostgreSQL, integer units on SQLite."""
    return sa.func.coalesce(sa.func.sum(_summable_cost(dialect, cost)), 0)


def _cost_value(dialect: Dialect, summed: Any) -> Decimal:
    if dialect == "postgresql":
        return Decimal(summed)
    return Decimal(int(summed)).scaleb(-10)


#: The largest duration counted, in seconds (beyond, its nanoseconds overflow a sum).
LONGEST = 1e9
#: Units of the exact sum of durations, per second.
DURATION_UNITS = 10**9


def _finite(column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """A duration that is a number of a sane size (NaN compares above every number on
    PostgreSQL, so it fails the upper bound)."""
    return sa.and_(
        column > sa.bindparam("shortest", -LONGEST, type_=sa.Float()),
        column < sa.bindparam("longest", LONGEST, type_=sa.Float()),
    )


def _duration_units(dialect: Dialect, duration: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """A duration in whole nanoseconds, rounded half away from zero's neighbour alike on
    both databases: the double ``d·10^9 + 0.5`` truncated toward zero."""
    shifted = duration * DURATION_UNITS + 0.5
    if dialect == "postgresql":
        return sa.cast(sa.func.trunc(shifted), sa.BigInteger)
    return sa.cast(shifted, sa.BigInteger)


def _rounded(value: Any) -> float | None:
    return None if value is None else round(float(value), FLOAT_PLACES)


def _ordered_key(dialect: Dialect, key: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return key.collate("C") if dialect == "postgresql" else key


# -- sums read from the rollups -----------------------------------------------------------------


def _plan(
    scope: Scope, grouping: Grouping, params: Mapping[str, Any] | None, allowed: bool
) -> rollups.Plan | None:
    """How ``rollups`` sums this scope and grouping, when it can (and is ``allowed``)."""
    if not allowed:
        return None
    buckets = grouping.buckets
    return rollups.plan(
        scope.shape,
        grouped_by=grouping.kind,
        bucket_unit=buckets.unit if buckets is not None else None,
        bucket_column=buckets.column if buckets is not None else None,
        utc_offset_minutes=int((params or {}).get("utc_offset_minutes", 0)),
    )


def _key_of(dialect: Dialect, grouping: Grouping, table: sa.Table) -> sa.ColumnElement[Any]:
    """The key of a grouping on rows of ``sessions`` or of a rollup table."""
    rolled = table is not sessions
    if grouping.buckets is not None:
        time = table.c.bucket if rolled else table.c[grouping.buckets.column]
        return _bucket_start(dialect, grouping.buckets, time)
    if grouping.kind == "all":
        return sa.null()
    if grouping.kind == "workflow" and rolled:
        return rollups.workflow_of(table)
    return table.c[_COLUMNS[grouping.kind]]


def _pieces(
    plan: rollups.Plan,
    dialect: Dialect,
    shape: _FilterShape,
    grouping: Grouping,
    table: sa.Table,
    rolled: Callable[[sa.ColumnElement[Any]], Sequence[sa.ColumnElement[Any]]],
    edge: Callable[[sa.ColumnElement[Any], list[sa.ColumnElement[bool]]], sa.Select[Any]],
) -> sa.Subquery:
    """The UNION ALL of a window's pieces (``rollups.pieces``): ``rolled(key)`` columns of
    ``table``'s rows, and for its ragged edges ``edge(key, where)``, a select of the
    sessions meeting ``where``."""
    pieces = rollups.pieces(plan, dialect)
    dimensions = rollups.dimension_conditions(plan, dialect, table)
    key = _key_of(dialect, grouping, table).label("key")
    selects: list[sa.Select[Any]] = [
        sa.select(key, *rolled(key)).where(
            table.c.grain == sa.literal_column(f"'{grain}'"), *span.of(table.c.bucket), *dimensions
        )
        for grain, span in pieces.rollups
    ]
    _, conditions = _keyed(dialect, shape, grouping)
    session_key = _key_of(dialect, grouping, sessions).label("key")
    for span in pieces.sessions:
        # The edge's own span first: SQLite ranges its index scan on the first bounds.
        selects.append(edge(session_key, [*span.of(sessions.c.started_at), *conditions]))
    return sa.union_all(*selects).subquery("keyed")


def _summed_rows(
    plan: rollups.Plan, dialect: Dialect, shape: _FilterShape, grouping: Grouping
) -> sa.Subquery:
    """Per piece of the window: ``key``, ``n`` sessions, their token sums and their
    ``total_cost_usd`` in summable form."""
    table = session_rollups

    def rolled(key: sa.ColumnElement[Any]) -> list[sa.ColumnElement[Any]]:
        return [
            table.c.sessions.label("n"),
            *(table.c[name] for name in _TOKEN_COLUMNS),
            table.c.total_cost_usd,
        ]

    def edge(key: sa.ColumnElement[Any], where: list[sa.ColumnElement[bool]]) -> sa.Select[Any]:
        return sa.select(
            key,
            sa.literal(1, sa.BigInteger).label("n"),
            *(sessions.c[name] for name in _TOKEN_COLUMNS),
            _summable_cost(dialect, sessions.c.total_cost_usd).label("total_cost_usd"),
        ).where(*where)

    return _pieces(plan, dialect, shape, grouping, table, rolled, edge)


# -- count, totals and durations per key ---------------------------------------------------

#: How groups are ordered: by a measure or by key, each way; ties by key ascending,
#: the NULL key last.
GroupOrderBy = Literal["count", "total_cost_usd", "total_tokens", "key"]
GroupOrder = tuple[GroupOrderBy, bool]


def _big_sum(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return sa.cast(sa.func.coalesce(sa.func.sum(column), 0), sa.BigInteger)


@functools.lru_cache(maxsize=128)
def _aggregates_statement(
    shape: _FilterShape,
    dialect: Dialect,
    grouping: Grouping,
    order: GroupOrder | None,
    plan: rollups.Plan | None,
) -> sa.Select[Any]:
    """Count and totals per key, from the sessions with their durations' measures, or
    (``plan``) from the rollups, without."""
    if plan is None:
        keyed, conditions = _keyed(dialect, shape, grouping)
        rows = keyed.where(*conditions).subquery("keyed")
        measures: list[sa.ColumnElement[Any]] = [
            sa.func.count().label("count"),
            *(_big_sum(rows.c[name]).label(name) for name in _TOKEN_COLUMNS),
            _cost_sum(dialect, rows.c.total_cost_usd).label("total_cost_usd"),
            *_duration_measures(dialect, rows.c.duration_seconds),
        ]
    else:
        rows = _summed_rows(plan, dialect, shape, grouping)
        measures = [
            _big_sum(rows.c.n).label("count"),
            *(_big_sum(rows.c[name]).label(name) for name in _TOKEN_COLUMNS),
            sa.func.coalesce(sa.func.sum(rows.c.total_cost_usd), 0).label("total_cost_usd"),
        ]
    columns = [rows.c.key, *measures]
    source: sa.FromClause = rows
    if grouping.kind == "workflow":
        source = rows.outerjoin(workflows, workflows.c.id == rows.c.key)
        columns.append(sa.func.max(workflows.c.name).label("name"))
    stmt = sa.select(*columns).select_from(source).group_by(rows.c.key)
    if plan is not None:  # rollup rows whose sessions all moved away add up to nothing
        stmt = stmt.having(sa.func.sum(rows.c.n) > 0)
    if order is None:
        return stmt
    by, descending = order
    key = _ordered_key(dialect, rows.c.key)
    if by == "key":
        return stmt.order_by(rows.c.key.is_(None), key.desc() if descending else key).limit(
            sa.bindparam("first", type_=sa.Integer)
        )
    measure: sa.ColumnElement[Any] = sa.literal_column(by)
    return stmt.order_by(
        measure.desc() if descending else measure, rows.c.key.is_(None), key
    ).limit(sa.bindparam("first", type_=sa.Integer))


async def aggregates(
    engine: AsyncEngine,
    scope: Scope,
    grouping: Grouping = ALL,
    *,
    params: Mapping[str, Any] | None = None,
    order: GroupOrder | None = None,
    first: int | None = None,
    durations: bool = True,
    use_rollups: bool = True,
) -> dict[Any, Aggregate]:
    """Per key (in ``order``, the ``first`` of them, when given): count, totals, and the
    durations' count, mean and extremes. When the rollups answer (the scope allows it,
    and ``use_rollups``), they give count and totals, and the durations (only with
    ``durations``) are a second statement. ``params`` holds a time series' bounds."""
    dialect = _dialect(engine)
    plan = _plan(scope, grouping, params, use_rollups)
    stmt = _aggregates_statement(scope.shape, dialect, grouping, order, plan)
    values = {**scope.params, **(params or {})}
    if order is not None:
        values["first"] = first
    found = {}
    for row in await _read(engine, stmt, values):
        fields = row._mapping
        found[fields["key"]] = Aggregate(
            count=int(fields["count"]),
            totals=Totals(
                **{name: int(fields[name]) for name in _TOKEN_COLUMNS},
                total_cost_usd=_cost_value(dialect, fields["total_cost_usd"]),
            ),
            durations=_durations_of(fields) if plan is None else Durations(),
            name=fields.get("name"),
        )
    if durations and plan is not None and found:
        # Sums from the rollups, durations from the sessions that have one: on
        # PostgreSQL, the partial index ix_sessions_started_at_durations alone.
        durations_of = {
            row._mapping["key"]: _durations_of(row._mapping)
            for row in await _read(
                engine, _durations_statement(scope.shape, dialect, grouping), values
            )
        }
        found = {
            key: replace(aggregate, durations=durations_of.get(key, Durations()))
            for key, aggregate in found.items()
        }
    return found


def _durations_of(fields: Mapping[Any, Any]) -> Durations:
    count = int(fields["duration_count"])
    if not count:
        return Durations()
    return Durations(
        count,
        _rounded(int(fields["duration_units"]) / count / DURATION_UNITS),
        fields["duration_min"],
        fields["duration_max"],
    )


def _duration_measures(
    dialect: Dialect, duration_seconds: sa.ColumnElement[Any]
) -> list[sa.ColumnElement[Any]]:
    """The finite durations' count, exact sum (``DURATION_UNITS``), least and greatest."""
    duration = sa.case((_finite(duration_seconds), duration_seconds))
    return [
        sa.func.count(duration).label("duration_count"),
        sa.func.sum(_duration_units(dialect, duration)).label("duration_units"),
        sa.func.min(duration).label("duration_min"),
        sa.func.max(duration).label("duration_max"),
    ]


@functools.lru_cache(maxsize=128)
def _durations_statement(
    shape: _FilterShape, dialect: Dialect, grouping: Grouping
) -> sa.Select[Any]:
    """Per key, its durations' measures, read from the sessions with a duration only
    (the predicate of ix_sessions_started_at_durations, which holds the columns the
    scopes the rollups answer read)."""
    keyed, conditions = _keyed(dialect, shape, grouping)
    narrow = keyed.with_only_columns(
        sessions.c.id, sessions.c.duration_seconds, keyed.selected_columns.key
    )
    rows = narrow.where(*conditions, sessions.c.duration_seconds.is_not(None)).subquery("keyed")
    return sa.select(rows.c.key, *_duration_measures(dialect, rows.c.duration_seconds)).group_by(
        rows.c.key
    )


# -- percentiles per key ---------------------------------------------------------------------


@functools.lru_cache(maxsize=128)
def _percentiles_statement(
    shape: _FilterShape, dialect: Dialect, grouping: Grouping, some_keys: bool
) -> sa.Select[Any]:
    """Rows (key, rank, value, n): per key, its number n of finite durations and the
    durations at the ranks (from 0) that bound each percentile p/100, ⌊p(n-1)/100⌋ and
    ⌈p(n-1)/100⌉, found in integer arithmetic; with ``some_keys``, only for the keys of
    ``keys`` (and the NULL key if ``null_key``)."""
    keyed, conditions = _keyed(dialect, shape, grouping)
    key = keyed.selected_columns.key
    if some_keys:
        conditions.append(
            sa.or_(
                key.in_(sa.bindparam("keys", expanding=True)),
                sa.and_(key.is_(None), sa.bindparam("null_key", type_=sa.Boolean)),
            )
        )
    # Only the columns used: a repo group's DISTINCT then compares (id, duration, entry),
    # not every column of the session (the id decides the others alike).
    narrow = keyed.with_only_columns(sessions.c.id, sessions.c.duration_seconds, key)
    inner = narrow.where(*conditions).subquery("keyed")
    if dialect == "postgresql":
        return _sorted_ranks(inner)
    return _window_ranks(inner)


def _bounding_ranks(n: sa.ColumnElement[int]) -> list[sa.ColumnElement[int]]:
    ranks = []
    for p in PERCENTILES:
        scaled = (n - 1) * p
        ranks += [scaled // 100, (scaled + 99) // 100]
    return ranks


def _sorted_ranks(inner: sa.Subquery) -> sa.Select[Any]:
    """PostgreSQL: each key's finite durations sorted into one array (8 bytes a duration,
    one key's at a time), read at the ranks: one sort per key and no window over every
    row, which took several times as long."""
    duration = inner.c.duration_seconds
    # The finite check filters the aggregate, not the rows: no index may serve it (the
    # one on duration_seconds would read every session), and the planner's row estimate
    # stays right, so it does not split the scan between workers that then pass every
    # row to one sort. Rows without a duration are left out up front: that is the
    # predicate of the partial index ix_sessions_started_at_durations, which holds what
    # the usual scopes read (started_at, workflow_id, status), so a window is read from
    # the index alone.
    per_key = (
        sa.select(
            inner.c.key,
            sa.func.array_agg(postgresql.aggregate_order_by(duration, duration))
            .filter(_finite(duration))
            .label("durations"),
            sa.func.sum(_duration_units("postgresql", duration))
            .filter(_finite(duration))
            .label("duration_units"),
        )
        .where(duration.is_not(None))
        .group_by(inner.c.key)
        .subquery("sorted")
    )
    durations = per_key.c.durations
    n = sa.cast(sa.func.cardinality(durations), sa.BigInteger)
    ranks = (
        sa.func.unnest(postgresql.array(_bounding_ranks(n)))
        .table_valued("rank")
        .render_derived("ranks")
    )
    return (
        sa.select(
            per_key.c.key,
            ranks.c.rank,
            durations[ranks.c.rank + 1].label("value"),  # arrays count from 1
            n.label("n"),
            per_key.c.duration_units,
            durations[1].label("duration_min"),
            durations[n].label("duration_max"),
        )
        .select_from(per_key.join(ranks, sa.true()))
        .where(durations.is_not(None))  # a key without finite durations has no array
    )


def _window_ranks(inner: sa.Subquery) -> sa.Select[Any]:
    """SQLite: each finite duration numbered within its key, the ranks' rows kept."""
    duration = inner.c.duration_seconds
    ranked = (
        sa.select(
            inner.c.key,
            duration.label("value"),
            (sa.func.row_number().over(partition_by=inner.c.key, order_by=duration) - 1).label(
                "rank"
            ),
            sa.func.count().over(partition_by=inner.c.key).label("n"),
            sa.func.sum(_duration_units("sqlite", duration))
            .over(partition_by=inner.c.key)
            .label("duration_units"),
            sa.func.min(duration).over(partition_by=inner.c.key).label("duration_min"),
            sa.func.max(duration).over(partition_by=inner.c.key).label("duration_max"),
        )
        # ``+ 0``: no index may serve the finite check. It passes nearly every row,
        # yet SQLite took ix_sessions_duration_seconds for its two-sided range and read
        # every session instead of the window's.
        .where(_finite(duration + 0))
        .subquery("ranked")
    )
    rank, n = ranked.c.rank, ranked.c.n
    measures = (ranked.c.duration_units, ranked.c.duration_min, ranked.c.duration_max)
    return sa.select(ranked.c.key, rank, ranked.c.value, n, *measures).where(
        sa.or_(*(rank == bound for bound in _bounding_ranks(n)))
    )


def percentiles_of(values: Mapping[int, float], n: int) -> dict[int, float]:
    """Each percentile from the values at its bounding ranks (``values``: rank -> value)."""
    found = {}
    for p in PERCENTILES:
        low, remainder = divmod((n - 1) * p, 100)
        lo = values[low]
        hi = values[low + 1] if remainder else lo
        found[p] = round(lo + (remainder / 100) * (hi - lo), FLOAT_PLACES)
    return found


async def percentiles(
    engine: AsyncEngine,
    scope: Scope,
    grouping: Grouping = ALL,
    *,
    params: Mapping[str, Any] | None = None,
    keys: Sequence[Any] | None = None,
) -> dict[Any, Durations]:
    """Per key (only ``keys``, when given), its finite durations' measures with their
    percentiles, read in one pass (a key without finite durations is left out)."""
    dialect = _dialect(engine)
    values = {**scope.params, **(params or {})}
    if keys is not None:
        values["keys"] = [k for k in keys if k is not None] or [None]
        values["null_key"] = None in keys
    stmt = _percentiles_statement(scope.shape, dialect, grouping, keys is not None)
    ranks: dict[Any, dict[int, float]] = defaultdict(dict)
    measures: dict[Any, RowMapping] = {}
    for row in await _read(engine, stmt, values):
        key, rank = row._mapping["key"], int(row._mapping["rank"])
        ranks[key][rank] = float(row._mapping["value"])
        measures[key] = row._mapping
    found = {}
    for key, fields in measures.items():
        n = int(fields["n"])
        found[key] = replace(
            _durations_of({**fields, "duration_count": n}),
            percentiles=percentiles_of(ranks[key], n),
        )
    return found


async def _read(
    engine: AsyncEngine, stmt: sa.Executable, params: Mapping[str, Any] | None = None
) -> Sequence[Row[Any]]:
    """Every statement of the stats planned for its values (``queries._planned``): its
    best plan depends on the window and the filter's values."""
    return await _rows(engine, stmt, params, planned=True)


def _triples(rows: Sequence[Row[Any]]) -> list[tuple[Any, Any, Any]]:
    return [cast("tuple[Any, Any, Any]", tuple(row)) for row in rows]


# -- statuses and models per key -------------------------------------------------------------


@functools.lru_cache(maxsize=128)
def _status_statement(
    shape: _FilterShape, dialect: Dialect, grouping: Grouping, plan: rollups.Plan | None
) -> sa.Select[Any]:
    if plan is None:
        keyed, conditions = _keyed(dialect, shape, grouping)
        rows = keyed.where(*conditions).subquery("keyed")
        counted: sa.ColumnElement[Any] = sa.func.count()
    else:
        table = session_rollups
        rows = _pieces(
            plan,
            dialect,
            shape,
            grouping,
            table,
            lambda key: [table.c.status, table.c.sessions.label("n")],
            lambda key, where: sa.select(
                key, sessions.c.status, sa.literal(1, sa.BigInteger).label("n")
            ).where(*where),
        )
        counted = _big_sum(rows.c.n)
    return sa.select(rows.c.key, rows.c.status, counted).group_by(rows.c.key, rows.c.status)


async def status_counts(
    engine: AsyncEngine,
    scope: Scope,
    grouping: Grouping = ALL,
    *,
    params: Mapping[str, Any] | None = None,
    use_rollups: bool = True,
) -> dict[Any, dict[str, int]]:
    """Per key, sessions per status: every status, zeros included, in the statuses' order."""
    plan = _plan(scope, grouping, params, use_rollups)
    stmt = _status_statement(scope.shape, _dialect(engine), grouping, plan)
    found: dict[Any, dict[str, int]] = defaultdict(lambda: dict.fromkeys(SESSION_STATUSES, 0))
    for key, status, count in _triples(
        await _read(engine, stmt, {**scope.params, **(params or {})})
    ):
        if status in SESSION_STATUSES:
            found[key][status] = int(count)
    return found


def _model_entries(dialect: Dialect, rows: sa.Subquery) -> tuple[Any, sa.ColumnElement[bool], Any]:
    """The ``cost_by_model`` entries of ``rows`` that are plain non-negative decimals
    (``12``, ``0.0438``), and each one's cost as summable (NUMERIC, or units on SQLite)."""
    if dialect == "postgresql":
        document = sa.case(
            (sa.func.jsonb_typeof(rows.c.cost_by_model) == "object", rows.c.cost_by_model),
            else_=sa.literal_column("'{}'::jsonb"),
        )
        entries = sa.func.jsonb_each_text(document).table_valued("key", "value").alias("entry")
        plain = entries.c.value.regexp_match(r"^[0-9]+(\.[0-9]+)?$")
        return entries, plain, sa.func.round(sa.cast(entries.c.value, sa.Numeric()), 10)
    document = sa.case(
        (sa.func.json_type(rows.c.cost_by_model) == "object", rows.c.cost_by_model), else_="{}"
    )
    entries = sa.func.json_each(document).table_valued("key", "value", "type").alias("entry")
    text = sa.cast(entries.c.value, sa.Text)
    glob = text.op("GLOB", is_comparison=True)
    plain = sa.and_(
        entries.c.type.in_(("text", "integer", "real")),
        text != "",
        *(sa.not_(glob(pattern)) for pattern in ("*[^0-9.]*", "*.*.*", ".*", "*.")),
    )
    units = sa.cast(sa.func.round(sa.cast(entries.c.value, sa.Float) * COST_UNITS), sa.BigInteger)
    return entries, plain, units


@functools.lru_cache(maxsize=128)
def _model_costs_statement(
    shape: _FilterShape, dialect: Dialect, grouping: Grouping, plan: rollups.Plan | None
) -> sa.Select[Any]:
    if plan is None:
        keyed, conditions = _keyed(dialect, shape, grouping)
        rows = keyed.where(*conditions).subquery("keyed")
        entries, plain, cost = _model_entries(dialect, rows)
        return (
            sa.select(rows.c.key, entries.c.key.label("model"), sa.func.sum(cost).label("cost"))
            .select_from(rows.join(entries, sa.true()))
            .where(plain)
            .group_by(rows.c.key, entries.c.key)
        )
    table = session_model_rollups

    def edge(key: sa.ColumnElement[Any], where: list[sa.ColumnElement[bool]]) -> sa.Select[Any]:
        # The sessions' entries, as the plain statement reads them.
        edge_rows = sa.select(key, sessions.c.cost_by_model).where(*where).subquery("edge")
        entries, plain, cost = _model_entries(dialect, edge_rows)
        return (
            sa.select(
                edge_rows.c.key,
                entries.c.key.label("model"),
                sa.literal(1, sa.BigInteger).label("entries"),
                cost.label("cost"),
            )
            .select_from(edge_rows.join(entries, sa.true()))
            .where(plain)
        )

    rows = _pieces(
        plan,
        dialect,
        shape,
        grouping,
        table,
        lambda key: [table.c.model, table.c.entries, table.c.cost],
        edge,
    )
    return (
        sa.select(rows.c.key, rows.c.model, sa.func.sum(rows.c.cost).label("cost"))
        .group_by(rows.c.key, rows.c.model)
        .having(sa.func.sum(rows.c.entries) > 0)
    )


async def model_costs(
    engine: AsyncEngine,
    scope: Scope,
    grouping: Grouping = ALL,
    *,
    params: Mapping[str, Any] | None = None,
    use_rollups: bool = True,
) -> dict[Any, list[tuple[str, Decimal]]]:
    """Per key, the summed cost of each model: most expensive first, then by model."""
    dialect = _dialect(engine)
    plan = _plan(scope, grouping, params, use_rollups)
    stmt = _model_costs_statement(scope.shape, dialect, grouping, plan)
    found: dict[Any, list[tuple[str, Decimal]]] = defaultdict(list)
    for key, model, cost in _triples(await _read(engine, stmt, {**scope.params, **(params or {})})):
        found[key].append((str(model), _cost_value(dialect, cost)))
    for costs in found.values():
        costs.sort(key=lambda item: (-item[1], item[0]))
    return found


# -- a time series' range --------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _range_statement(shape: _FilterShape, column: str) -> sa.Select[Any]:
    value = sessions.c[column]
    conditions = [*_session_conditions(shape), value.is_not(None)]
    # One subquery each: SQLite reads a min() or a max() from the end of an index only
    # when it is the query's sole aggregate (else it scans the whole index).
    return sa.select(
        *(
            sa.select(extreme(value)).where(*conditions).scalar_subquery()
            for extreme in (sa.func.min, sa.func.max)
        )
    )


async def time_range(engine: AsyncEngine, scope: Scope, column: str) -> tuple[Any, Any]:
    """The earliest and latest value of ``column`` among the matching sessions."""
    [row] = await _read(engine, _range_statement(scope.shape, column), scope.params)
    low, high = cast("tuple[Any, Any]", tuple(row))
    processor = sessions.c[column].type
    if isinstance(low, str):  # SQLite's text, through the column's own reading
        result = processor.result_processor(engine.dialect, None)
        if result is not None:
            low, high = result(low), result(high)
    return low, high


# -- tools -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolTotals:
    tool_name: str
    calls: int
    failures: int
    #: over the calls with a duration: their summed seconds (exact, then rounded) and count
    total_duration_seconds: float
    duration_count: int


@functools.lru_cache(maxsize=64)
def _tools_statement(shape: _FilterShape, dialect: Dialect) -> sa.Select[Any]:
    """The matching sessions' tool usage summed per tool (``session_tools`` rows add up),
    most calls first, then by name byte-wise; the sessions' summed seconds in exact
    nanoseconds, as mean durations are."""
    tools = session_tools.c
    calls = sa.func.sum(tools.calls)
    return (
        sa.select(
            tools.tool_name,
            calls.label("calls"),
            sa.func.sum(tools.failures).label("failures"),
            sa.func.sum(_duration_units(dialect, tools.total_duration_seconds)).label("units"),
            sa.func.sum(tools.duration_count).label("duration_count"),
        )
        .select_from(session_tools.join(sessions, sessions.c.id == tools.session_id))
        .where(*_session_conditions(shape))
        .group_by(tools.tool_name)
        .order_by(calls.desc(), _ordered_key(dialect, tools.tool_name))
        .limit(sa.bindparam("first", type_=sa.Integer))
    )


async def tool_totals(engine: AsyncEngine, scope: Scope, first: int) -> list[ToolTotals]:
    """The ``first`` most called tools of the matching sessions."""
    stmt = _tools_statement(scope.shape, _dialect(engine))
    rows = await _read(engine, stmt, {**scope.params, "first": first})
    return [
        ToolTotals(
            tool_name=row._mapping["tool_name"],
            calls=int(row._mapping["calls"]),
            failures=int(row._mapping["failures"]),
            total_duration_seconds=int(row._mapping["units"]) / DURATION_UNITS,
            duration_count=int(row._mapping["duration_count"]),
        )
        for row in rows
    ]
