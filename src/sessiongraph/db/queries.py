"""Plain typed query functions; resolvers translate GraphQL arguments and call these.

Every function runs a fixed number of statements, whatever the number of rows.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from sessiongraph.db.tables import HEAVY_OPERATION_COLUMNS, operations, sessions, workflows
from sessiongraph.errors import QueryTimeout

T = TypeVar("T")

#: Rows a prefix lookup reads: enough to list 5 candidates and know there were more.
PREFIX_CANDIDATES = 5


@dataclass(frozen=True, slots=True)
class SessionFilter:
    workflow_id: str | None = None
    statuses: tuple[str, ...] = ()
    started_after: datetime | None = None
    started_before: datetime | None = None


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


#: SQLSTATE of a statement the server cancelled (PostgreSQL's statement_timeout).
QUERY_CANCELED = "57014"


async def _all(engine: AsyncEngine, stmt: sa.Executable) -> Sequence[RowMapping]:
    async def run() -> Sequence[RowMapping]:
        async with engine.connect() as conn:
            result = await conn.execute(stmt)
            return result.mappings().all()

    return await uncancellable(_timed(run()))


async def _scalar(engine: AsyncEngine, stmt: sa.Executable) -> Any:
    async def run() -> Any:
        async with engine.connect() as conn:
            return await conn.scalar(stmt)

    return await uncancellable(_timed(run()))


async def _timed(work: Coroutine[Any, Any, T]) -> T:
    """``work``, with a statement the server cancelled for time reported as ``QueryTimeout``."""
    try:
        return await work
    except sa.exc.DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) != QUERY_CANCELED:
            raise
        raise QueryTimeout(
            "The database stopped this query at the statement timeout. Ask for less "
            "(a smaller `first`, narrower filters) or try again later.",
            limit="statementTimeout",
        ) from None


def _session_conditions(filters: SessionFilter) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if filters.workflow_id is not None:
        conditions.append(sessions.c.workflow_id == filters.workflow_id)
    if filters.statuses:
        conditions.append(sessions.c.status.in_(filters.statuses))
    # A NULL started_at fails both comparisons, so undated sessions never match a bound.
    if filters.started_after is not None:
        conditions.append(sessions.c.started_at >= filters.started_after)
    if filters.started_before is not None:
        conditions.append(sessions.c.started_at <= filters.started_before)
    return conditions


async def fetch_session_page(
    *,
    engine: AsyncEngine,
    filters: SessionFilter,
    ordering: SessionOrdering,
    after: Keyset | None,
    limit: int,
) -> Sequence[RowMapping]:
    """Up to ``limit`` sessions after ``after`` in ``ordering``, NULLs last, id as tie-break.

    One UNION ALL of index-ordered ``LIMIT`` branches, merged by the outer
    ORDER BY: rows with a value and rows without one are separate branches (so
    no direction needs a NULLS LAST index), and so is each status of a
    multi-status filter (an index walks one status in order; ``IN`` over
    several would need a sort of every match). Each branch is a range scan of a
    ``(filter, column, id)`` or ``(column, id)`` index, so a page costs the same
    at any table size and any depth.
    """
    column = sessions.c[ordering.column]
    per_status: list[tuple[str, ...]] = [(status,) for status in filters.statuses] or [()]
    branches = [
        branch
        for statuses in per_status
        for branch in _page_branches(
            _session_conditions(replace(filters, statuses=statuses)), column, ordering, after
        )
    ]
    if not branches:  # a cursor past the NULLs of a column that has none
        return []
    if len(branches) == 1:
        return await _all(engine, branches[0].limit(limit))
    union = sa.union_all(*(sa.select(b.limit(limit).subquery()) for b in branches)).subquery()
    stmt = (
        sa.select(union)
        .order_by(
            union.c[ordering.column].is_(None),
            *_directed((union.c[ordering.column], union.c.id), ordering),
        )
        .limit(limit)
    )
    return await _all(engine, stmt)


def _page_branches(
    conditions: list[sa.ColumnElement[bool]],
    column: sa.Column[Any],
    ordering: SessionOrdering,
    after: Keyset | None,
) -> list[sa.Select[Any]]:
    """The valued and the NULL part of one filter's page, each in index order."""
    order = _directed((column, sessions.c.id), ordering)
    branches = []
    if after is None or after.value is not None:
        valued = sa.select(sessions).where(*conditions, column.is_not(None))
        if after is not None:
            position = sa.tuple_(column, sessions.c.id)
            bound = sa.tuple_(
                sa.literal(after.value, column.type), sa.literal(after.id, sessions.c.id.type)
            )
            valued = valued.where(position < bound if ordering.descending else position > bound)
        branches.append(valued.order_by(*order))
    if column.nullable:
        undated = sa.select(sessions).where(*conditions, column.is_(None))
        if after is not None and after.value is None:
            undated = undated.where(
                sessions.c.id < after.id if ordering.descending else sessions.c.id > after.id
            )
        # Ordered by the (all NULL) column too, the planner walks the same index
        # as the valued branch; ordered by id alone, PostgreSQL may walk the
        # primary key hoping to meet NULLs early, and read the whole table
        # when the filter matches none.
        branches.append(undated.order_by(*order))
    return branches


def _directed(
    columns: Iterable[sa.ColumnElement[Any]], ordering: SessionOrdering
) -> list[sa.UnaryExpression[Any]]:
    return [c.desc() if ordering.descending else c.asc() for c in columns]


async def ping(*, engine: AsyncEngine) -> None:
    """Read from the database; raises when it cannot answer."""
    await _scalar(engine, sa.select(sessions.c.id).limit(1))


async def count_sessions(*, engine: AsyncEngine, filters: SessionFilter) -> int:
    stmt = sa.select(sa.func.count()).select_from(sessions).where(*_session_conditions(filters))
    return int(await _scalar(engine, stmt))


def _prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with ``prefix``."""
    for i in range(len(prefix) - 1, -1, -1):
        code = ord(prefix[i])
        if code < 0x10FFFF and not 0xD7FF <= code < 0xDFFF:
            return prefix[:i] + chr(code + 1)
    return None


async def find_sessions_by_id_or_prefix(
    *, engine: AsyncEngine, id_or_prefix: str
) -> Sequence[RowMapping]:
    """The session whose id is ``id_or_prefix``, else those whose id starts with it.

    One statement: a range scan of the primary key. The comparison is
    byte-wise (PostgreSQL ids use the "C" collation), so ``%``, ``_`` and
    ``\\`` are plain characters. An exact match sorts first and is returned
    alone; otherwise up to ``PREFIX_CANDIDATES + 1`` matches come back.
    """
    conditions = [sessions.c.id >= id_or_prefix]
    upper = _prefix_upper_bound(id_or_prefix)
    if upper is not None:
        conditions.append(sessions.c.id < upper)
    else:  # only U+10FFFF characters: no string bounds the range from above
        conditions.append(sa.func.substr(sessions.c.id, 1, len(id_or_prefix)) == id_or_prefix)
    stmt = (
        sa.select(sessions).where(*conditions).order_by(sessions.c.id).limit(PREFIX_CANDIDATES + 1)
    )
    rows = await _all(engine, stmt)
    if rows and rows[0]["id"] == id_or_prefix:
        return rows[:1]
    return rows


async def fetch_session(*, engine: AsyncEngine, session_id: str) -> RowMapping | None:
    rows = await _all(engine, sa.select(sessions).where(sessions.c.id == session_id))
    return rows[0] if rows else None


async def fetch_operations_by_id(
    *, engine: AsyncEngine, operation_ids: Sequence[str], columns: Iterable[str] = ()
) -> dict[str, RowMapping]:
    selected = [operations.c[n] for n in (*LIGHT_OPERATION_COLUMNS, *sorted(set(columns)))]
    stmt = sa.select(*selected).where(operations.c.operation_id.in_(operation_ids))
    return {row["operation_id"]: row for row in await _all(engine, stmt)}


async def fetch_recorded_operations(
    *, engine: AsyncEngine, session_id: str, rows: tuple[int, int], columns: Iterable[str] = ()
) -> Sequence[RowMapping]:
    """The operations one batch stored: ``rows`` is its first and last ``operations.id``."""
    selected = [operations.c[n] for n in (*LIGHT_OPERATION_COLUMNS, *sorted(set(columns)))]
    stmt = (
        sa.select(*selected)
        .where(operations.c.session_id == session_id, operations.c.id.between(*rows))
        .order_by(operations.c.id)
    )
    return await _all(engine, stmt)


async def fetch_sessions_for_filter(
    *, engine: AsyncEngine, ids: Sequence[str], filters: SessionFilter
) -> dict[str, RowMapping]:
    """The sessions of ``ids``, each with ``matches`` (it passes ``filters``) and
    ``matches_but_status`` (it passes them all but the status condition)."""
    unstatused = replace(filters, statuses=())
    stmt = sa.select(
        sessions,
        _all_true(_session_conditions(filters)).label("matches"),
        _all_true(_session_conditions(unstatused)).label("matches_but_status"),
    ).where(sessions.c.id.in_(ids))
    return {row["id"]: row for row in await _all(engine, stmt)}


def _all_true(conditions: list[sa.ColumnElement[bool]]) -> sa.ColumnElement[bool]:
    # NULL (an undated session against a time bound) counts as false, as in WHERE.
    if not conditions:
        return sa.true()
    return sa.func.coalesce(sa.and_(*conditions), sa.false())


async def fetch_workflows(*, engine: AsyncEngine, ids: Sequence[str]) -> dict[str, RowMapping]:
    rows = await _all(engine, sa.select(workflows).where(workflows.c.id.in_(ids)))
    return {row["id"]: row for row in rows}


def _operation_conditions(
    filters: OperationFilter, table: sa.FromClause = operations
) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if filters.types is not None:
        conditions.append(table.c.operation_type.in_(filters.types))
    if filters.tool_name is not None:
        conditions.append(table.c.tool_name == filters.tool_name)
    if filters.success is not None:
        conditions.append(table.c.success == filters.success)
    return conditions


async def count_operations(
    *, engine: AsyncEngine, session_ids: Sequence[str], filters: OperationFilter
) -> dict[str, int]:
    stmt = (
        sa.select(operations.c.session_id, sa.func.count().label("count"))
        .where(operations.c.session_id.in_(session_ids), *_operation_conditions(filters))
        .group_by(operations.c.session_id)
    )
    rows = await _all(engine, stmt)
    return {row["session_id"]: int(row["count"]) for row in rows}


#: Columns every operation page reads; heavy ones and git are added when selected.
LIGHT_OPERATION_COLUMNS = tuple(
    c.name for c in operations.c if c.name not in {*HEAVY_OPERATION_COLUMNS, "git"}
)


def _timeline_order(table: sa.FromClause) -> tuple[sa.ColumnElement[Any], ...]:
    return (table.c.timestamp.is_(None), table.c.timestamp, table.c.id)


async def fetch_operation_pages(
    *,
    engine: AsyncEngine,
    session_ids: Sequence[str],
    filters: OperationFilter,
    after: Keyset | None,
    limit: int,
    columns: Iterable[str] = (),
) -> dict[str, list[RowMapping]]:
    """The first ``limit`` operations after ``after`` of each session, oldest first.

    One statement for all sessions, in which each session's page is an
    index-ordered ``LIMIT`` walk of its timeline. ``columns`` names the heavy
    columns (and ``git``) to read besides the light ones.
    """
    selected = (*LIGHT_OPERATION_COLUMNS, *sorted(set(columns)))
    unique_ids = list(dict.fromkeys(session_ids))
    if engine.dialect.name == "sqlite":
        stmt = _pages_by_json_each(unique_ids, selected, filters, after, limit)
    else:
        stmt = _pages_by_lateral(unique_ids, selected, filters, after, limit)
    pages: dict[str, list[RowMapping]] = defaultdict(list)
    for row in await _all(engine, stmt):
        pages[row["session_id"]].append(row)
    return pages


def _page_conditions(
    table: sa.FromClause, filters: OperationFilter, after: Keyset | None
) -> list[sa.ColumnElement[bool]]:
    conditions = _operation_conditions(filters, table)
    if after is not None:
        if after.value is None:
            conditions += [table.c.timestamp.is_(None), table.c.id > after.id]
        else:
            conditions.append(
                sa.tuple_(*_timeline_order(table))
                > sa.tuple_(
                    sa.false(),
                    sa.literal(after.value, table.c.timestamp.type),
                    sa.literal(after.id, table.c.id.type),
                )
            )
    return conditions


def _pages_by_json_each(
    session_ids: list[str],
    selected: Sequence[str],
    filters: OperationFilter,
    after: Keyset | None,
    limit: int,
) -> sa.Select[Any]:
    """SQLite: for each id of a JSON array, the ids of its page, then those rows.

    The SQL text is the same for any number of sessions (one JSON parameter),
    so it is compiled once. Measured against a window function and a UNION ALL
    of per-session subqueries in bench/operation_pages.py; this was fastest.
    """
    wanted = sa.func.json_each(sa.bindparam("session_ids", json.dumps(session_ids))).table_valued(
        "key", "value"
    )
    inner = operations.alias("page")
    page_ids = (
        sa.select(inner.c.id)
        .where(inner.c.session_id == wanted.c.value, *_page_conditions(inner, filters, after))
        .order_by(*_timeline_order(inner))
        .limit(limit)
    )
    return (
        sa.select(*(operations.c[name] for name in selected))
        .select_from(wanted.join(operations, operations.c.id.in_(page_ids)))
        .order_by(wanted.c.key, *_timeline_order(operations))
    )


def _pages_by_lateral(
    session_ids: list[str],
    selected: Sequence[str],
    filters: OperationFilter,
    after: Keyset | None,
    limit: int,
) -> sa.Select[Any]:
    """PostgreSQL: each id of an array parameter joined LATERAL to its ``LIMIT`` page.

    Constant SQL text for any number of sessions (one array parameter), so
    the statement is compiled and prepared once.
    """
    wanted = (
        sa.func.unnest(sa.bindparam("session_ids", session_ids, type_=postgresql.ARRAY(sa.Text)))
        .table_valued("session_id", with_ordinality="position")
        .render_derived()
    )
    page = (
        sa.select(*(operations.c[name] for name in selected))
        .where(
            operations.c.session_id == wanted.c.session_id,
            *_page_conditions(operations, filters, after),
        )
        .order_by(*_timeline_order(operations))
        .limit(limit)
        .lateral("page")
    )
    return (
        sa.select(page)
        .select_from(wanted.join(page, sa.true()))
        .order_by(wanted.c.position, *_timeline_order(page))
    )
