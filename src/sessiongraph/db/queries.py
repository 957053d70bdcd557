"""Plain typed query functions; resolvers translate GraphQL arguments and call these.

Every function runs a fixed number of statements, whatever the number of rows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import re
import weakref
from collections import defaultdict
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Row, RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sessiongraph import node_ids
from sessiongraph.db import filtering, outages
from sessiongraph.db.columns import UTCDateTime
from sessiongraph.db.tables import operations, session_tools, sessions, workflows
from sessiongraph.errors import QueryTimeout

T = TypeVar("T")

#: Rows a prefix lookup reads: enough to list 5 candidates and know there were more.
PREFIX_CANDIDATES = 5


@dataclass(frozen=True, slots=True)
class SessionCriteria:
    """Which sessions a list holds: the flat arguments of ``sessions`` and, AND'ed with
    them, its ``filter`` (``where``; None when it filters nothing)."""

    workflow_id: str | None = None
    statuses: tuple[str, ...] = ()
    started_after: datetime | None = None
    started_before: datetime | None = None
    where: filtering.Where | None = None


@dataclass(frozen=True, slots=True)
class SessionOrdering:
    column: str = "started_at"
    descending: bool = True


@dataclass(frozen=True, slots=True)
class Keyset:
    """A position in an ordered list: the sort value and the tie-breaking id of a row."""

    value: Any
    id: Any


@dataclass(frozen=True, slots=True)
class OperationFilter:
    types: tuple[str, ...] | None = None
    tool_name: str | None = None
    success: bool | None = None


#: Statements still running for a caller that has gone away; see ``uncancellable``.
_in_flight: set[asyncio.Task[Any]] = set()


async def uncancellable(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` to completion even if the awaiting request is cancelled.

    GraphQL execution cancels the loads of sibling fields once an error nulls
    their parent. Cancelling a driver call half-way leaves its connection in
    an unknown state (aiosqlite's close can then wait forever), so the
    statement finishes in the background and returns its connection to the
    pool; ``drain`` waits for such statements before the engine is disposed.
    """
    task = asyncio.ensure_future(work)
    _in_flight.add(task)
    task.add_done_callback(_in_flight.discard)
    return await asyncio.shield(task)


async def drain() -> None:
    """Wait for statements whose callers were cancelled."""
    while _in_flight:
        await asyncio.gather(*_in_flight, return_exceptions=True)


#: Per engine, the same engine reading in autocommit (see ``_reader``).
_readers: weakref.WeakKeyDictionary[AsyncEngine, AsyncEngine] = weakref.WeakKeyDictionary()


def _reader(engine: AsyncEngine) -> AsyncEngine:
    """``engine`` for reads of one statement each. On PostgreSQL, in autocommit: a read
    is the statement alone, not BEGIN, the statement and ROLLBACK (three round trips).
    One statement sees one snapshot either way. It shares the pool. SQLite's driver
    opens no transaction for a SELECT, and switching it costs two calls to its thread."""
    if engine.dialect.name != "postgresql":
        return engine
    reader = _readers.get(engine)
    if reader is None:
        reader = _readers[engine] = engine.execution_options(isolation_level="AUTOCOMMIT")
    return reader


#: SQLSTATE of a statement the server cancelled (PostgreSQL's statement_timeout).
QUERY_CANCELED = outages.QUERY_CANCELED


async def _all(
    engine: AsyncEngine, stmt: sa.Executable, params: Mapping[str, Any] | None = None
) -> Sequence[RowMapping]:
    async def run() -> Sequence[RowMapping]:
        async with _reader(engine).connect() as conn:
            result = await conn.execute(stmt, params)
            return result.mappings().all()

    return await uncancellable(_timed(run()))


async def _rows(
    engine: AsyncEngine,
    stmt: sa.Executable,
    params: Mapping[str, Any] | None = None,
    *,
    planned: bool = False,
) -> Sequence[Row[Any]]:
    """The rows as SQLAlchemy reads them, by position: what many rows are read as,
    without a mapping built per row. ``planned``: see ``_planned``."""

    async def run() -> Sequence[Row[Any]]:
        async with _reader(engine).connect() as conn:
            if planned and engine.dialect.name == "postgresql":
                return await _planned(conn, stmt, params)
            result = await conn.execute(stmt, params)
            return result.all()

    return await uncancellable(_timed(run()))


async def _planned(
    conn: AsyncConnection, stmt: sa.Executable, params: Mapping[str, Any] | None
) -> Sequence[Row[Any]]:
    """PostgreSQL: ``stmt`` planned for its values. After five runs of a prepared
    statement the server may keep one generic plan for all values, when its estimate
    looks no worse; for a statement whose best plan depends on its values (a filter's
    bounds and choices, a window of rollups) that plan can take many times as long: a
    composed filter over a page, 14 ms planned for its values, 1.3 s generic; 30 days
    of model costs 11 ms against 76. Two round trips more, and planning (1-2 ms), for
    statements the plan cache could not be trusted with; the hot unfiltered pages keep
    their cached plans (planning the page statement costs more than running it)."""
    await conn.exec_driver_sql("SET plan_cache_mode = force_custom_plan")
    try:
        return (await conn.execute(stmt, params)).all()
    finally:
        await conn.exec_driver_sql("RESET plan_cache_mode")


async def _scalar(
    engine: AsyncEngine, stmt: sa.Executable, params: Mapping[str, Any] | None = None
) -> Any:
    async def run() -> Any:
        async with _reader(engine).connect() as conn:
            return await conn.scalar(stmt, params)

    return await uncancellable(_timed(run()))


async def _timed(work: Coroutine[Any, Any, T]) -> T:
    """``work``, with a statement the server cancelled for time reported as ``QueryTimeout``
    and an outage of the database as ``DatabaseUnavailable``."""
    try:
        with outages.reported():
            return await work
    except sa.exc.DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) != QUERY_CANCELED:
            raise
        raise QueryTimeout(
            "The database stopped this query at the statement timeout. Ask for less "
            "(a smaller `first`, narrower filters) or try again later.",
            limit="statementTimeout",
        ) from None


# Statements are built once per shape (which filters are present, which columns are
# read) with named parameters, and cached: building a statement of subqueries takes
# SQLAlchemy longer than SQLite takes to run it. Values travel as parameters.


@dataclass(frozen=True, slots=True)
class _FilterShape:
    """Which conditions of a ``SessionCriteria`` are present: the flat ones, and the shape
    of its ``filter`` with the database it is compiled for."""

    workflow: bool
    statuses: int
    started_after: bool
    started_before: bool
    where: filtering.Condition | None = None
    dialect: str | None = None

    @staticmethod
    def of(filters: SessionCriteria, dialect: str) -> _FilterShape:
        where = filters.where
        return _FilterShape(
            workflow=filters.workflow_id is not None,
            statuses=len(filters.statuses),
            started_after=filters.started_after is not None,
            started_before=filters.started_before is not None,
            where=where.shape if where is not None else None,
            dialect=dialect if where is not None else None,
        )


def _session_params(filters: SessionCriteria) -> dict[str, Any]:
    params: dict[str, Any] = {f"status_{i}": s for i, s in enumerate(filters.statuses)}
    params.update(
        workflow_id=filters.workflow_id,
        statuses=list(filters.statuses),
        started_after=filters.started_after,
        started_before=filters.started_before,
    )
    if filters.where is not None:
        params.update(filters.where.params)
    return params


def _session_conditions(
    shape: _FilterShape, status: int | None = None, *, page: bool = False
) -> list[sa.ColumnElement[bool]]:
    """The filter's conditions; the status is ``status_<status>`` alone when given,
    else any of the ``statuses``. ``page``: for a page's branch (``filtering.condition``)."""
    columns = sessions.c
    conditions: list[sa.ColumnElement[bool]] = []
    if shape.workflow:
        conditions.append(columns.workflow_id == sa.bindparam("workflow_id"))
    if status is not None:
        conditions.append(columns.status == sa.bindparam(f"status_{status}"))
    elif shape.statuses:
        conditions.append(columns.status.in_(sa.bindparam("statuses", expanding=True)))
    # A NULL started_at fails both comparisons, so undated sessions never match a bound.
    if shape.started_after:
        conditions.append(columns.started_at >= sa.bindparam("started_after"))
    if shape.started_before:
        conditions.append(columns.started_at <= sa.bindparam("started_before"))
    if shape.where is not None and shape.dialect is not None:
        # One condition for the whole filter, added to every branch of a page: the
        # flat conditions above keep choosing the index each branch walks.
        conditions.append(filtering.condition(shape.where, shape.dialect, page=page))
    return conditions


#: Where a page starts: at the beginning, after a row with a value, or after one without.
_Start = Literal["first", "valued", "null"]


def _start(after: Keyset | None) -> _Start:
    if after is None:
        return "first"
    return "null" if after.value is None else "valued"


_LIMIT = sa.bindparam("limit", type_=sa.Integer)


@dataclass(frozen=True, slots=True)
class ReadAhead:
    """What a page of sessions reads with its rows, in the same statement: each session's
    workflow (``read_ahead_workflow_id``, ``read_ahead_workflow_name``; the id is NULL
    when the workflow has no row) and the number of sessions the filter matches
    (``read_ahead_total``)."""

    workflow: bool = False
    total: bool = False
    #: Read the JSON documents too (``metadata``, ``cost_by_model``: the sessions' heavy
    #: columns); without them those keys are absent from the rows.
    documents: bool = True


#: Columns of sessions read only when a field needs them.
SESSION_DOCUMENTS = ("metadata", "cost_by_model")


async def fetch_session_page(
    *,
    engine: AsyncEngine,
    filters: SessionCriteria,
    ordering: SessionOrdering,
    after: Keyset | None,
    limit: int,
    read_ahead: ReadAhead = ReadAhead(),
) -> Sequence[Row[Any]]:
    """Up to ``limit`` sessions after ``after`` in ``ordering``, NULLs last, id as tie-break,
    each row with the columns ``read_ahead`` names (rows by position)."""
    dialect = engine.dialect.name
    shape = _FilterShape.of(filters, dialect)
    stmt = _session_page_statement(shape, ordering, _start(after), read_ahead, dialect)
    if stmt is None:  # a cursor past the NULLs of a column that has none
        return []
    params = _session_params(filters)
    params["limit"] = limit
    if after is not None:
        params.update(after_value=after.value, after_id=after.id)
    return await _rows(engine, stmt, params, planned=shape.where is not None)


@functools.lru_cache(maxsize=256)
def _session_page_statement(
    shape: _FilterShape,
    ordering: SessionOrdering,
    start: _Start,
    read_ahead: ReadAhead,
    dialect: str,
) -> sa.Select[Any] | None:
    page = _session_rows_statement(shape, ordering, start, read_ahead.documents, dialect)
    if page is None or not (read_ahead.workflow or read_ahead.total):
        return page
    rows = page.subquery("page")
    columns: list[sa.ColumnElement[Any]] = [*rows.c]
    joined: sa.FromClause = rows
    if read_ahead.workflow:
        joined = rows.outerjoin(workflows, workflows.c.id == rows.c.workflow_id)
        columns += [
            workflows.c.id.label("read_ahead_workflow_id"),
            workflows.c.name.label("read_ahead_workflow_name"),
        ]
    if read_ahead.total:  # not correlated: the database counts once
        total = _session_count_statement(shape).scalar_subquery()
        columns.append(total.label("read_ahead_total"))
    column = rows.c[ordering.column]
    return (
        sa.select(*columns)
        .select_from(joined)
        .order_by(column.is_(None), *_directed((column, rows.c.id), ordering))
    )


def _session_rows_statement(
    shape: _FilterShape, ordering: SessionOrdering, start: _Start, documents: bool, dialect: str
) -> sa.Select[Any] | None:
    """One UNION ALL of index-ordered ``LIMIT`` branches, merged by the outer
    ORDER BY: rows with a value and rows without one are separate branches (so
    no direction needs a NULLS LAST index), and so is each status of a
    multi-status filter (an index walks one status in order; ``IN`` over
    several would need a sort of every match). Each branch is a range scan of a
    ``(filter, column, id)`` or ``(column, id)`` index, so a page costs the same
    at any table size and any depth.

    The NULL branches run only when the valued ones leave the page short. The
    outer ORDER BY reads every branch to the end, and a NULL branch whose filter
    matches nothing walks every row without a value (every pending session, for
    ``started_at``), evaluating the filter on each. So the valued rows are a CTE,
    and a NULL branch reads nothing unless they number fewer than the page
    (``_when_short``).
    """
    column = sessions.c[ordering.column]
    per_status: list[int | None] = list(range(shape.statuses)) or [None]
    valued: list[sa.Select[Any]] = []
    undated: list[sa.Select[Any]] = []
    for status in per_status:
        conditions = _session_conditions(shape, status, page=True)
        if start != "null":
            valued.append(_valued_branch(conditions, column, ordering, start, documents))
        if column.nullable:
            undated.append(_null_branch(conditions, column, ordering, start, documents))
    branches = valued + undated
    if not branches:
        return None
    if len(branches) == 1:
        return branches[0].limit(_LIMIT)
    parts: list[sa.Select[Any]]
    if valued and undated:
        rows = _union([b.limit(_LIMIT) for b in valued]).cte("valued")
        short = sa.select(sa.func.count(rows.c.id)).scalar_subquery() < _LIMIT
        gated = (_when_short(b, short, dialect) for b in undated)
        parts = [sa.select(rows), *(sa.select(b.subquery()) for b in gated)]
    else:
        parts = [sa.select(b.limit(_LIMIT).subquery()) for b in branches]
    union = sa.union_all(*parts).subquery()
    return (
        sa.select(union)
        .order_by(
            union.c[ordering.column].is_(None),
            *_directed((union.c[ordering.column], union.c.id), ordering),
        )
        .limit(_LIMIT)
    )


def _when_short(
    branch: sa.Select[Any], short: sa.ColumnElement[bool], dialect: str
) -> sa.Select[Any]:
    """``branch`` up to a page of rows, none unless ``short`` (a condition of no row) holds.

    PostgreSQL: in the WHERE clause, a One-Time Filter, decided before the branch
    reads a row. (A ``LIMIT`` of 0 would also read none, but a ``LIMIT`` it cannot
    evaluate when planning is costed as a tenth of the branch's rows: the prepared
    statement then saw its generic plan as cheaper, and switched to it.) SQLite tests
    a WHERE term with a subquery on every row; with a ``LIMIT`` of 0 it skips the loop.
    """
    if dialect == "sqlite":
        return branch.limit(sa.case((short, _LIMIT), else_=0))
    return branch.where(short).limit(_LIMIT)


def _union(branches: list[sa.Select[Any]]) -> sa.Select[Any] | sa.CompoundSelect[Any]:
    """The rows of every branch, each a ``LIMIT`` subquery (its own order kept)."""
    if len(branches) == 1:
        return branches[0]
    return sa.union_all(*(sa.select(b.subquery()) for b in branches))


def _read(documents: bool) -> list[sa.Column[Any]]:
    return [c for c in sessions.c if documents or c.name not in SESSION_DOCUMENTS]


def _valued_branch(
    conditions: list[sa.ColumnElement[bool]],
    column: sa.Column[Any],
    ordering: SessionOrdering,
    start: _Start,
    documents: bool,
) -> sa.Select[Any]:
    """The rows of one filter with a value in ``column``, in index order."""
    valued = sa.select(*_read(documents)).where(*conditions, column.is_not(None))
    if start == "valued":
        position = sa.tuple_(column, sessions.c.id)
        after_id = sa.bindparam("after_id", type_=sessions.c.id.type)
        bound = sa.tuple_(sa.bindparam("after_value", type_=column.type), after_id)
        valued = valued.where(position < bound if ordering.descending else position > bound)
    return valued.order_by(*_directed((column, sessions.c.id), ordering))


def _null_branch(
    conditions: list[sa.ColumnElement[bool]],
    column: sa.Column[Any],
    ordering: SessionOrdering,
    start: _Start,
    documents: bool,
) -> sa.Select[Any]:
    """The rows of one filter without a value in ``column``, in index order."""
    undated = sa.select(*_read(documents)).where(*conditions, column.is_(None))
    if start == "null":
        after_id = sa.bindparam("after_id", type_=sessions.c.id.type)
        undated = undated.where(
            sessions.c.id < after_id if ordering.descending else sessions.c.id > after_id
        )
    # Ordered by the (all NULL) column too, the planner walks the same index
    # as the valued branch; ordered by id alone, PostgreSQL may walk the
    # primary key hoping to meet NULLs early, and read the whole table
    # when the filter matches none.
    return undated.order_by(*_directed((column, sessions.c.id), ordering))


def _directed(
    columns: Iterable[sa.ColumnElement[Any]], ordering: SessionOrdering
) -> list[sa.UnaryExpression[Any]]:
    return [c.desc() if ordering.descending else c.asc() for c in columns]


_PING = sa.select(sessions.c.id).limit(1)


async def ping(*, engine: AsyncEngine) -> None:
    """Read from the database; raises what the driver raised when it cannot answer, for
    the health check to name (it reports outages itself, not as ``DatabaseUnavailable``)."""

    async def run() -> None:
        async with engine.connect() as conn:
            await conn.scalar(_PING)

    await uncancellable(run())


async def count_sessions(*, engine: AsyncEngine, filters: SessionCriteria) -> int:
    stmt = _session_count_statement(_FilterShape.of(filters, engine.dialect.name))
    return int(await _scalar(engine, stmt, _session_params(filters)))


@functools.lru_cache(maxsize=64)
def _session_count_statement(shape: _FilterShape) -> sa.Select[Any]:
    return sa.select(sa.func.count()).select_from(sessions).where(*_session_conditions(shape))


def _prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with ``prefix``."""
    for i in range(len(prefix) - 1, -1, -1):
        code = ord(prefix[i])
        if code < 0x10FFFF and not 0xD7FF <= code < 0xDFFF:
            return prefix[:i] + chr(code + 1)
    return None


def _prefix_statement(bounded: bool) -> sa.Select[Any]:
    lowest = sa.bindparam("lowest", type_=sessions.c.id.type)
    if bounded:
        within = sessions.c.id < sa.bindparam("upper", type_=sessions.c.id.type)
    else:  # only U+10FFFF characters: no string bounds the range from above
        length = sa.bindparam("length", type_=sa.Integer)
        within = sa.func.substr(sessions.c.id, 1, length) == lowest
    return (
        sa.select(sessions)
        .where(sessions.c.id >= lowest, within)
        .order_by(sessions.c.id)
        .limit(PREFIX_CANDIDATES + 1)
    )


_PREFIX = {bounded: _prefix_statement(bounded) for bounded in (True, False)}


async def find_sessions_by_id_or_prefix(
    *, engine: AsyncEngine, id_or_prefix: str
) -> Sequence[RowMapping]:
    """The session whose id is ``id_or_prefix``, else those whose id starts with it.

    One statement: a range scan of the primary key. The comparison is
    byte-wise (PostgreSQL ids use the "C" collation), so ``%``, ``_`` and
    ``\\`` are plain characters. An exact match sorts first and is returned
    alone; otherwise up to ``PREFIX_CANDIDATES + 1`` matches come back.
    """
    upper = _prefix_upper_bound(id_or_prefix)
    params = {"lowest": id_or_prefix, "upper": upper, "length": len(id_or_prefix)}
    rows = await _all(engine, _PREFIX[upper is not None], params)
    if rows and rows[0]["id"] == id_or_prefix:
        return rows[:1]
    return rows


_SESSION = sa.select(sessions).where(sessions.c.id == sa.bindparam("session_id"))


async def fetch_session(*, engine: AsyncEngine, session_id: str) -> RowMapping | None:
    rows = await _all(engine, _SESSION, {"session_id": session_id})
    return rows[0] if rows else None


_SESSIONS = sa.select(sessions).where(sessions.c.id.in_(sa.bindparam("ids", expanding=True)))


async def fetch_sessions(*, engine: AsyncEngine, ids: Sequence[str]) -> dict[str, RowMapping]:
    """The sessions whose ids are ``ids`` (exactly), by id; one statement."""
    rows = await _all(engine, _SESSIONS, {"ids": list(dict.fromkeys(ids))})
    return {row["id"]: row for row in rows}


def _operation_columns(columns: Iterable[str]) -> tuple[str, ...]:
    """``columns`` in the table's order, with the ones a page needs (its keyset, its
    session): one order, so one statement per set of columns."""
    wanted = {*columns, *_PAGE_COLUMNS}
    return tuple(c.name for c in operations.c if c.name in wanted)


async def fetch_operations_by_id(
    *, engine: AsyncEngine, operation_ids: Sequence[str], columns: Iterable[str]
) -> dict[str, Row[Any]]:
    stmt = _operations_by_id_statement(_operation_columns(columns))
    rows = await _rows(engine, stmt, {"operation_ids": list(dict.fromkeys(operation_ids))})
    return {row.operation_id: row for row in rows}


@functools.lru_cache(maxsize=64)
def _operations_by_id_statement(selected: tuple[str, ...]) -> sa.Select[Any]:
    return sa.select(*(operations.c[n] for n in selected)).where(
        operations.c.operation_id.in_(sa.bindparam("operation_ids", expanding=True))
    )


async def fetch_recorded_operations(
    *, engine: AsyncEngine, session_id: str, rows: tuple[int, int], columns: Iterable[str]
) -> Sequence[Row[Any]]:
    """The operations one batch stored: ``rows`` is its first and last ``operations.id``."""
    stmt = _recorded_operations_statement(_operation_columns(columns))
    params = {"session_id": session_id, "first_row": rows[0], "last_row": rows[1]}
    return await _rows(engine, stmt, params)


@functools.lru_cache(maxsize=64)
def _recorded_operations_statement(selected: tuple[str, ...]) -> sa.Select[Any]:
    return (
        sa.select(*(operations.c[n] for n in selected))
        .where(
            operations.c.session_id == sa.bindparam("session_id"),
            operations.c.id.between(sa.bindparam("first_row"), sa.bindparam("last_row")),
        )
        .order_by(operations.c.id)
    )


def whole_filter(filters: SessionCriteria) -> filtering.Where | None:
    """``filters`` as one filter tree, its flat arguments conditions of it: for a statement
    that reads sessions by id, with no index to choose."""
    where = filters.where
    parameters = filtering.Parameters(where.params if where is not None else {})
    parts: list[filtering.Condition] = [where.shape] if where is not None else []
    if filters.workflow_id is not None:
        eq = parameters.add(filters.workflow_id)
        parts.append(filtering.Text("workflow_id", filtering.Strings(eq=eq)))
    if filters.statuses:
        parts.append(filtering.Status(parameters.add(list(filters.statuses))))
    if filters.started_after is not None:
        after = filtering.Bounds(gte=parameters.add(filters.started_after))
        parts.append(filtering.Within("started_at", after))
    if filters.started_before is not None:
        before = filtering.Bounds(lte=parameters.add(filters.started_before))
        parts.append(filtering.Within("started_at", before))
    return filtering.prepare(filtering.All(tuple(parts)), parameters)


@dataclass(frozen=True, slots=True)
class Change:
    """What writes did to a session since a subscriber last looked (one event): whether
    they started it, the first ``operations.id`` they added, and the values they
    replaced (``Event.before``)."""

    session_id: str
    new: bool = False
    first_row: int | None = None
    before: Mapping[str, Any] = dataclasses.field(default_factory=dict)


async def fetch_changed_sessions(
    *, engine: AsyncEngine, changes: Sequence[Change], where: filtering.Where | None
) -> dict[str, RowMapping]:
    """The sessions of ``changes`` as they are now, each with ``matches`` (it matches
    ``where`` now) and ``matched`` (it matched before the writes of its change): both
    decided by the database, in one statement."""
    dialect = engine.dialect.name
    params: dict[str, Any] = dict(where.params) if where is not None else {}
    params["changes"] = filtering.changed_sessions_json(
        {c.session_id: (c.new, c.first_row, c.before) for c in changes}, dialect
    )
    stmt = _changed_sessions_statement(where.shape if where is not None else None, dialect)
    rows = await _all(engine, stmt, params)
    return {row["id"]: row for row in rows}


@functools.lru_cache(maxsize=64)
def _changed_sessions_statement(shape: filtering.Condition | None, dialect: str) -> sa.Select[Any]:
    before = filtering.BEFORE
    change = before.relation(dialect)
    if shape is None:
        matches: sa.ColumnElement[bool] = sa.true()
        matched: sa.ColumnElement[bool] = sa.true()
    else:
        # NULL (an undated session against a time bound) counts as false, as in WHERE.
        matches = sa.func.coalesce(filtering.condition(shape, dialect), sa.false())
        matched = sa.func.coalesce(filtering.condition(shape, dialect, before), sa.false())
    # The ids compare byte-wise (PostgreSQL: the ids' "C" collation, not the key's).
    key = change.c.key if dialect == "sqlite" else change.c.key.collate("C")
    return sa.select(
        sessions,
        matches.label("matches"),
        sa.case((before.new(dialect), sa.false()), else_=matched).label("matched"),
    ).select_from(change.join(sessions, sessions.c.id == key))


_WORKFLOWS = sa.select(workflows).where(workflows.c.id.in_(sa.bindparam("ids", expanding=True)))


async def fetch_workflows(*, engine: AsyncEngine, ids: Sequence[str]) -> dict[str, RowMapping]:
    rows = await _all(engine, _WORKFLOWS, {"ids": list(ids)})
    return {row["id"]: row for row in rows}


def _tool_usage_statement() -> sa.Select[Any]:
    """Of each session in ``session_ids``, its ``first`` tools with the most calls (then
    by name), in that order."""
    ranked = (
        sa.select(
            *session_tools.c,
            sa.func.row_number()
            .over(
                partition_by=session_tools.c.session_id,
                order_by=(session_tools.c.calls.desc(), session_tools.c.tool_name),
            )
            .label("rank"),
        )
        .where(session_tools.c.session_id.in_(sa.bindparam("session_ids", expanding=True)))
        .subquery("ranked")
    )
    return (
        sa.select(*(ranked.c[c.name] for c in session_tools.c))
        .where(ranked.c.rank <= sa.bindparam("first", type_=sa.Integer))
        .order_by(ranked.c.session_id, ranked.c.rank)
    )


_TOOL_USAGE = _tool_usage_statement()


async def fetch_tool_usage(
    *, engine: AsyncEngine, session_ids: Sequence[str], first: int
) -> dict[str, list[RowMapping]]:
    """The ``first`` most called tools of each session, most calls first, then by name;
    a session without tool calls is absent. One statement for all sessions."""
    params = {"session_ids": list(dict.fromkeys(session_ids)), "first": first}
    usage: dict[str, list[RowMapping]] = defaultdict(list)
    for row in await _all(engine, _TOOL_USAGE, params):
        usage[row["session_id"]].append(row)
    return usage


@dataclass(frozen=True, slots=True)
class _OperationFilterShape:
    """Which conditions of an ``OperationFilter`` are present."""

    types: bool
    tool_name: bool
    success: bool

    @staticmethod
    def of(filters: OperationFilter) -> _OperationFilterShape:
        return _OperationFilterShape(
            types=filters.types is not None,
            tool_name=filters.tool_name is not None,
            success=filters.success is not None,
        )


def _operation_params(filters: OperationFilter) -> dict[str, Any]:
    return {
        "types": list(filters.types or ()),
        "tool_name": filters.tool_name,
        "success": filters.success,
    }


def _operation_conditions(
    shape: _OperationFilterShape, table: sa.FromClause = operations
) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if shape.types:
        conditions.append(table.c.operation_type.in_(sa.bindparam("types", expanding=True)))
    if shape.tool_name:
        conditions.append(table.c.tool_name == sa.bindparam("tool_name"))
    if shape.success:
        conditions.append(table.c.success == sa.bindparam("success"))
    return conditions


async def count_operations(
    *, engine: AsyncEngine, session_ids: Sequence[str], filters: OperationFilter
) -> dict[str, int]:
    params = _operation_params(filters)
    params["session_ids"] = list(session_ids)
    stmt = _operation_count_statement(_OperationFilterShape.of(filters))
    rows = await _all(engine, stmt, params)
    return {row["session_id"]: int(row["count"]) for row in rows}


@functools.lru_cache(maxsize=16)
def _operation_count_statement(shape: _OperationFilterShape) -> sa.Select[Any]:
    session_ids: sa.BindParameter[list[str]] = sa.bindparam("session_ids", expanding=True)
    return (
        sa.select(operations.c.session_id, sa.func.count().label("count"))
        .where(operations.c.session_id.in_(session_ids), *_operation_conditions(shape))
        .group_by(operations.c.session_id)
    )


#: Columns every read of operations includes, whatever the caller asks for.
_PAGE_COLUMNS = ("id", "session_id", "timestamp")


def _timeline_order(table: sa.FromClause) -> tuple[sa.ColumnElement[Any], ...]:
    return (table.c.timestamp.is_(None), table.c.timestamp, table.c.id)


async def fetch_operation_pages(
    *,
    engine: AsyncEngine,
    session_ids: Sequence[str],
    filters: OperationFilter,
    after: Keyset | None,
    limit: int,
    columns: Iterable[str],
) -> dict[str, list[Row[Any]]]:
    """The first ``limit`` operations after ``after`` of each session, oldest first.

    One statement for all sessions, in which each session's page is an
    index-ordered ``LIMIT`` walk of its timeline. ``columns`` names the columns to
    read (the ones a page needs are read anyway).
    """
    sqlite = engine.dialect.name == "sqlite"
    stmt = _operation_pages_statement(
        sqlite, _operation_columns(columns), _OperationFilterShape.of(filters), _start(after)
    )
    unique_ids = list(dict.fromkeys(session_ids))
    params = _operation_params(filters)
    params.update(session_ids=json.dumps(unique_ids) if sqlite else unique_ids, limit=limit)
    if after is not None:
        params.update(after_value=after.value, after_id=after.id)
    pages: dict[str, list[Row[Any]]] = defaultdict(list)
    rows = await _rows(engine, stmt, params)
    if rows:
        session_of = rows[0]._fields.index("session_id")
        for row in rows:
            pages[row[session_of]].append(row)
    return pages


@functools.lru_cache(maxsize=256)
def _operation_pages_statement(
    sqlite: bool, selected: tuple[str, ...], shape: _OperationFilterShape, start: _Start
) -> sa.Select[Any]:
    if sqlite:
        return _pages_by_json_each(selected, shape, start)
    return _pages_by_lateral(selected, shape, start)


def _page_conditions(
    table: sa.FromClause, shape: _OperationFilterShape, start: _Start
) -> list[sa.ColumnElement[bool]]:
    conditions = _operation_conditions(shape, table)
    after_id = sa.bindparam("after_id", type_=table.c.id.type)
    if start == "null":
        conditions += [table.c.timestamp.is_(None), table.c.id > after_id]
    elif start == "valued":
        after_value = sa.bindparam("after_value", type_=table.c.timestamp.type)
        conditions.append(
            sa.tuple_(*_timeline_order(table)) > sa.tuple_(sa.false(), after_value, after_id)
        )
    return conditions


def _pages_by_json_each(
    selected: Sequence[str], shape: _OperationFilterShape, start: _Start
) -> sa.Select[Any]:
    """SQLite: for each id of a JSON array, the ids of its page, then those rows.

    The SQL text is the same for any number of sessions (one JSON parameter),
    so it is compiled once. Measured against a window function and a UNION ALL
    of per-session subqueries in bench/operation_pages.py; this was fastest.
    """
    wanted = sa.func.json_each(sa.bindparam("session_ids", type_=sa.Text)).table_valued(
        "key", "value"
    )
    inner = operations.alias("page")
    page_ids = (
        sa.select(inner.c.id)
        .where(inner.c.session_id == wanted.c.value, *_page_conditions(inner, shape, start))
        .order_by(*_timeline_order(inner))
        .limit(_LIMIT)
    )
    return (
        sa.select(*(operations.c[name] for name in selected))
        .select_from(wanted.join(operations, operations.c.id.in_(page_ids)))
        .order_by(wanted.c.key, *_timeline_order(operations))
    )


def _pages_by_lateral(
    selected: Sequence[str], shape: _OperationFilterShape, start: _Start
) -> sa.Select[Any]:
    """PostgreSQL: each id of an array parameter joined LATERAL to its ``LIMIT`` page.

    Constant SQL text for any number of sessions (one array parameter), so
    the statement is compiled and prepared once.
    """
    session_ids = sa.bindparam("session_ids", type_=postgresql.ARRAY(sa.Text))
    wanted = (
        sa.func.unnest(session_ids)
        .table_valued("session_id", with_ordinality="position")
        .render_derived()
    )
    page = (
        sa.select(*(operations.c[name] for name in selected))
        .where(
            operations.c.session_id == wanted.c.session_id,
            *_page_conditions(operations, shape, start),
        )
        .order_by(*_timeline_order(operations))
        .limit(_LIMIT)
        .lateral("page")
    )
    return (
        sa.select(page)
        .select_from(wanted.join(page, sa.true()))
        .order_by(wanted.c.position, *_timeline_order(page))
    )


# -- pages of operations as JSON, built by PostgreSQL ---------------------------------------
#
# For a page whose every selected field is a column with a plain JSON form, PostgreSQL
# writes the response's bytes: each row's object as text, the page as one array, spliced
# into the response unparsed. Each value is written exactly as the GraphQL response
# would write it from Python: strings escaped as orjson escapes them (to_json does the
# same), a timestamp as ``datetime.isoformat`` in UTC, a float as orjson writes the
# shortest round-tripping digits (PostgreSQL's float8 text has the same digits, laid
# out differently outside 1e-4..1e15 and without ``.0``). A value the response would
# refuse (an Int beyond 32 bits, a float that is not finite) marks the page not
# buildable, and the caller reads rows instead.

#: How a field's value is written: as a string, a boolean, an Int (one beyond 32 bits
#: refused, or saturated at the nearest bound), a Float, a DateTime, or an operation's
#: global id of its operation id (``node_ids.operation_node_id``).
JsonKind = Literal[
    "string", "boolean", "int", "saturated_int", "float", "datetime", "operation_node_id"
]
#: A field of a page's objects: its response key, and its column and kind (or, for
#: ``__typename``, None and the type name).
JsonField = tuple[str, str | None, str]

_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*$")
_SQL_TYPES: dict[str, tuple[type, ...]] = {
    "string": (sa.String,),
    "boolean": (sa.Boolean,),
    "int": (sa.Integer,),
    "saturated_int": (sa.Integer,),
    "float": (sa.Float,),
    "datetime": (UTCDateTime,),
    "operation_node_id": (sa.String,),
}
_INT32 = (-(2**31), 2**31 - 1)


def json_columns_fit(fields: Sequence[JsonField]) -> bool:
    """Whether each field names a column of operations whose type its kind writes."""
    for _key, column, kind in fields:
        if column is None:
            continue
        if column not in operations.c:
            return False
        if not isinstance(operations.c[column].type, _SQL_TYPES[kind]):
            return False
    return True


def _json_value(column: str, kind: str) -> tuple[str, str | None]:
    """The SQL writing ``page.<column>`` as JSON text, and the condition under which the
    response can hold it (None: always)."""
    c = f"page.{column}"
    if kind == "string":
        return f"COALESCE(to_json({c})::text, 'null')", None
    if kind == "boolean":
        return f"CASE WHEN {c} THEN 'true' WHEN NOT {c} THEN 'false' ELSE 'null' END", None
    if kind == "int":
        low, high = _INT32
        return f"COALESCE({c}::text, 'null')", f"({c} IS NULL OR {c} BETWEEN {low} AND {high})"
    if kind == "saturated_int":  # as stored.saturated_int reads it
        low, high = _INT32
        # LEAST and GREATEST skip NULLs: NULL is tested first.
        saturated = f"LEAST(GREATEST({c}, {low}), {high})::text"
        return f"CASE WHEN {c} IS NULL THEN 'null' ELSE {saturated} END", None
    if kind == "operation_node_id":  # as node_ids.operation_node_id writes it
        # base64 of the UTF-8 bytes, in the URL's alphabet, without padding; PostgreSQL
        # breaks base64 into lines of 76, which translate drops (chr(10) has no partner).
        base64 = f"encode(convert_to({c}, 'UTF8'), 'base64')"
        url = f"rtrim(translate({base64}, '+/' || chr(10), '-_'), '=')"
        prefix = node_ids.OPERATION_PREFIX
        return f"'\"{prefix}' || {url} || '\"'", f"({c} IS NOT NULL)"
    if kind == "datetime":
        # isoformat leaves out a zero fraction: ".000000" can only be the fraction.
        # PostgreSQL's infinities (which the driver reads as datetime.min and .max)
        # have no such text: left to Python.
        text = f"to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"
        value = (
            f"CASE WHEN {c} IS NULL THEN 'null' "
            f"ELSE '\"' || replace({text}, '.000000', '') || '+00:00\"' END"
        )
        return value, f"({c} IS NULL OR isfinite({c}))"
    # float: PostgreSQL's shortest digits, laid out as orjson lays them out.
    t = f"{c}::text"
    mantissa = f"split_part({t}, 'e', 1)"
    exponent = f"NULLIF(split_part({t}, 'e', 2), '')::int"  # NULL for NaN, Infinity
    sign = f"CASE WHEN {c} < 0 THEN '-' ELSE '' END"
    digits = f"replace(ltrim({mantissa}, '-'), '.', '')"
    text = (
        f"CASE WHEN {c} IS NULL THEN 'null' "
        f"WHEN strpos({t}, 'e') = 0 AND strpos({t}, '.') > 0 THEN {t} "
        f"WHEN strpos({t}, 'e') = 0 THEN {t} || '.0' "
        f"WHEN {exponent} = -5 THEN {sign} || '0.0000' || {digits} "
        f"WHEN {exponent} = 15 THEN {sign} || CASE WHEN length({digits}) <= 16 "
        f"THEN rpad({digits}, 16, '0') || '.0' "
        f"ELSE left({digits}, 16) || '.' || substr({digits}, 17) END "
        f"ELSE {mantissa} || 'e' || CASE WHEN {exponent} > 0 THEN '+' ELSE '-' END "
        f"|| abs({exponent})::text END"
    )
    # Beyond 2**53 (every such double an integer), PostgreSQL's float8 text sometimes
    # has a digit more than the shortest (1e23 as 9.999999999999999e+22): such a
    # value, and a float that is not finite, is left to Python.
    fits = f"({c} IS NULL OR abs({c}) < {float(2**53)!r}::float8)"
    return text, fits


@functools.lru_cache(maxsize=128)
def _json_object(fields: tuple[JsonField, ...]) -> tuple[str, str]:
    """The SQL of one row's object as JSON text, and of whether the response can hold it."""
    parts: list[str] = []
    checks: list[str] = []
    for index, (key, column, kind) in enumerate(fields):
        if not _NAME.match(key) or (column is not None and not _NAME.match(column)):
            raise ValueError(f"not a GraphQL name: {key!r}")
        opening = "{" if index == 0 else ","
        if column is None:
            parts.append(f'\'{opening}"{key}":"{kind}"\'')
            continue
        value, check = _json_value(column, kind)
        parts.append(f"'{opening}\"{key}\":' || {value}")
        if check is not None:
            checks.append(check)
    parts.append("'}'" if fields else "'{}'")
    return " || ".join(parts), " AND ".join(checks) or "true"


async def fetch_operation_pages_json(
    *,
    engine: AsyncEngine,
    session_ids: Sequence[str],
    filters: OperationFilter,
    after: Keyset | None,
    limit: int,
    fields: Sequence[JsonField],
) -> dict[str, str] | None:
    """The first ``limit`` operations after ``after`` of each session, oldest first, as the
    JSON array of objects of ``fields`` the response would hold; a session without any
    is absent. None when some value cannot be written so (then read the rows).
    PostgreSQL only; one statement, as ``fetch_operation_pages``."""
    stmt = _operation_pages_json_statement(
        tuple(fields), _OperationFilterShape.of(filters), _start(after)
    )
    params = _operation_params(filters)
    params.update(session_ids=list(dict.fromkeys(session_ids)), limit=limit)
    if after is not None:
        params.update(after_value=after.value, after_id=after.id)
    pages: dict[str, str] = {}
    for row in await _rows(engine, stmt, params):
        session_id, text, fits = tuple(row)
        if not fits:
            return None
        pages[session_id] = text
    return pages


@functools.lru_cache(maxsize=128)
def _operation_pages_json_statement(
    fields: tuple[JsonField, ...], shape: _OperationFilterShape, start: _Start
) -> sa.Select[Any]:
    columns = {column for _key, column, _kind in fields if column is not None}
    page = _pages_by_lateral(_operation_columns(columns), shape, start).subquery("page")
    value, fits = _json_object(fields)
    # Each row's text beside the columns it is ordered by; a value that makes it NULL
    # (none should) fails the page rather than leaving a row out.
    written = sa.select(
        page.c.session_id,
        page.c.timestamp,
        page.c.id,
        sa.literal_column(value).label("object"),
        sa.literal_column(fits).label("fits"),
    ).subquery("written")
    return sa.select(
        written.c.session_id,
        sa.literal_column(
            "'[' || string_agg(written.object, ',' ORDER BY (written.timestamp IS NULL), "
            "written.timestamp, written.id) || ']'"
        ),
        sa.func.bool_and(sa.and_(written.c.fits, written.c.object.is_not(None))),
    ).group_by(written.c.session_id)
