"""Plain typed query functions; resolvers translate GraphQL arguments and call these.

Every function runs a fixed number of statements, whatever the number of rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from sessiongraph.db.tables import HEAVY_OPERATION_COLUMNS, operations, sessions, workflows

#: Sortable session columns, by name.
SESSION_SORT_COLUMNS = (
    "started_at",
    "completed_at",
    "total_cost_usd",
    "total_tokens",
    "duration_seconds",
)

#: At most this many per-session subqueries go into one UNION ALL (SQLite allows 500).
MAX_UNION_BRANCHES = 250

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


async def _all(engine: AsyncEngine, stmt: sa.Executable) -> Sequence[RowMapping]:
    async with engine.connect() as conn:
        result = await conn.execute(stmt)
        return result.mappings().all()


async def _scalar(engine: AsyncEngine, stmt: sa.Executable) -> Any:
    async with engine.connect() as conn:
        return await conn.scalar(stmt)


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

    Rows with a value and rows without one are read by two index-ordered
    branches of one UNION ALL, so neither direction needs a NULLS LAST index
    and a deep page is an index range scan.
    """
    column = sessions.c[ordering.column]
    conditions = _session_conditions(filters)
    branches: list[sa.Select[Any]] = []

    if after is None or after.value is not None:
        valued = sa.select(sessions).where(*conditions, column.is_not(None))
        if after is not None:
            position = sa.tuple_(column, sessions.c.id)
            bound = sa.tuple_(
                sa.literal(after.value, column.type), sa.literal(after.id, sessions.c.id.type)
            )
            valued = valued.where(position < bound if ordering.descending else position > bound)
        branches.append(valued.order_by(*_directed((column, sessions.c.id), ordering)))

    if column.nullable:
        undated = sa.select(sessions).where(*conditions, column.is_(None))
        if after is not None and after.value is None:
            undated = undated.where(
                sessions.c.id < after.id if ordering.descending else sessions.c.id > after.id
            )
        branches.append(undated.order_by(*_directed((sessions.c.id,), ordering)))

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


def _directed(
    columns: Iterable[sa.ColumnElement[Any]], ordering: SessionOrdering
) -> list[sa.UnaryExpression[Any]]:
    return [c.desc() if ordering.descending else c.asc() for c in columns]


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
    conditions = [
        sessions.c.id >= id_or_prefix,
        sa.func.substr(sessions.c.id, 1, len(id_or_prefix)) == id_or_prefix,
    ]
    upper = _prefix_upper_bound(id_or_prefix)
    if upper is not None:
        conditions.append(sessions.c.id < upper)
    stmt = (
        sa.select(sessions).where(*conditions).order_by(sessions.c.id).limit(PREFIX_CANDIDATES + 1)
    )
    rows = await _all(engine, stmt)
    if rows and rows[0]["id"] == id_or_prefix:
        return rows[:1]
    return rows


async def fetch_workflows(*, engine: AsyncEngine, ids: Sequence[str]) -> dict[str, RowMapping]:
    rows = await _all(engine, sa.select(workflows).where(workflows.c.id.in_(ids)))
    return {row["id"]: row for row in rows}


def _operation_conditions(filters: OperationFilter) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if filters.types is not None:
        conditions.append(operations.c.operation_type.in_(filters.types))
    if filters.tool_name is not None:
        conditions.append(operations.c.tool_name == filters.tool_name)
    if filters.success is not None:
        conditions.append(operations.c.success == filters.success)
    return conditions


async def count_operations(
    *, engine: AsyncEngine, session_ids: Sequence[str], filters: OperationFilter
) -> dict[str, int]:
    stmt = (
        sa.select(operations.c.session_id, sa.func.count())
        .where(operations.c.session_id.in_(session_ids), *_operation_conditions(filters))
        .group_by(operations.c.session_id)
    )
    async with engine.connect() as conn:
        result = await conn.execute(stmt)
        return {session_id: int(count) for session_id, count in result}


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

    One UNION ALL of per-session ``LIMIT`` subqueries per 250 sessions; each
    subquery walks the timeline index of its session and stops at ``limit``.
    ``columns`` names the heavy columns (and ``git``) to read besides the light ones.
    """
    selected = [operations.c[name] for name in (*LIGHT_OPERATION_COLUMNS, *sorted(set(columns)))]
    conditions = _operation_conditions(filters)
    if after is not None:
        if after.value is None:
            conditions += [operations.c.timestamp.is_(None), operations.c.id > after.id]
        else:
            conditions.append(
                sa.tuple_(*_timeline_order(operations))
                > sa.tuple_(
                    sa.false(),
                    sa.literal(after.value, operations.c.timestamp.type),
                    sa.literal(after.id, operations.c.id.type),
                )
            )

    def branch(session_id: str) -> sa.Select[Any]:
        return (
            sa.select(*selected)
            .where(operations.c.session_id == session_id, *conditions)
            .order_by(*_timeline_order(operations))
            .limit(limit)
        )

    pages: dict[str, list[RowMapping]] = defaultdict(list)
    unique_ids = list(dict.fromkeys(session_ids))
    for start in range(0, len(unique_ids), MAX_UNION_BRANCHES):
        chunk = unique_ids[start : start + MAX_UNION_BRANCHES]
        if len(chunk) == 1:
            stmt: sa.Executable = branch(chunk[0])
        else:
            stmt = sa.union_all(*(sa.select(branch(sid).subquery()) for sid in chunk))
        for row in await _all(engine, stmt):
            pages[row["session_id"]].append(row)
    for rows in pages.values():
        _ensure_timeline_order(rows)
    return pages


def _timeline_key(row: RowMapping) -> tuple[bool, Any, int]:
    return (row["timestamp"] is None, row["timestamp"], row["id"])


def _ensure_timeline_order(rows: list[RowMapping]) -> None:
    # SQL does not promise that UNION ALL keeps each branch's order (a parallel
    # plan may interleave them); the check is linear, the sort almost never runs.
    keys = [(ts is None, ts or 0, i) for ts, i in ((r["timestamp"], r["id"]) for r in rows)]
    if any(keys[i] > keys[i + 1] for i in range(len(keys) - 1)):
        rows.sort(key=lambda r: (r["timestamp"] is None, r["timestamp"] or 0, r["id"]))
