"""Per-session counters of operations and per-tool usage, kept exact as operations are written.

Every write of operations updates them in its own transaction, from exactly the rows it
stored: ``Tally.of`` the rows an INSERT returned, added with ``increments`` and
``add_tools`` (recordOperations, the demo seed), or ``recount`` from the stored
operations of some sessions (the importer, which may also change stored operations).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from sessiongraph.db.columns import database_clock
from sessiongraph.db.tables import operations, session_tools, sessions

#: A tool call: an operation of one of these types (and, for tool usage, a tool name).
TOOL_CALL_TYPES = frozenset({"tool_execution_completed", "tool_execution_failed", "tool_blocked"})
#: Tool calls of these types are failures, whatever their ``success``.
TOOL_FAILURE_TYPES = frozenset({"tool_execution_failed", "tool_blocked"})
SUBAGENT_TYPE = "subagent_started"
#: git_operation entries are not commits.
COMMIT_TYPE = "git_commit"
COUNTERS = (
    "operation_count",
    "tool_call_count",
    "failed_operation_count",
    "subagent_count",
    "commit_count",
)


@dataclass(slots=True)
class ToolTally:
    calls: int = 0
    failures: int = 0
    durations: list[float] = field(default_factory=list)

    @property
    def total_duration_seconds(self) -> float:
        return math.fsum(self.durations)  # exactly rounded, whatever the order


@dataclass(slots=True)
class Tally:
    """What some operations of one session add to its counters and tool usage."""

    operation_count: int = 0
    tool_call_count: int = 0
    failed_operation_count: int = 0
    subagent_count: int = 0
    commit_count: int = 0
    tools: dict[str, ToolTally] = field(default_factory=dict)

    @classmethod
    def of(cls, rows: Iterable[Mapping[str, Any]]) -> Tally:
        tally = cls()
        for row in rows:
            kind, success = row["operation_type"], row["success"]
            tally.operation_count += 1
            if not success:
                tally.failed_operation_count += 1
            if kind == SUBAGENT_TYPE:
                tally.subagent_count += 1
            elif kind == COMMIT_TYPE:
                tally.commit_count += 1
            elif kind in TOOL_CALL_TYPES:
                tally.tool_call_count += 1
                name = row["tool_name"]
                if name is None:
                    continue
                tool = tally.tools.get(name)
                if tool is None:
                    tool = tally.tools[name] = ToolTally()
                tool.calls += 1
                if not success or kind in TOOL_FAILURE_TYPES:
                    tool.failures += 1
                if row["duration_seconds"] is not None:
                    tool.durations.append(row["duration_seconds"])
        return tally

    def counters(self) -> dict[str, int]:
        """The counters by column name."""
        return {name: getattr(self, name) for name in COUNTERS}

    def tool_rows(self, session_id: str) -> list[dict[str, Any]]:
        """The ``session_tools`` rows of these operations alone."""
        return [
            {
                "session_id": session_id,
                "tool_name": name,
                "calls": tool.calls,
                "failures": tool.failures,
                "total_duration_seconds": tool.total_duration_seconds,
                "duration_count": len(tool.durations),
            }
            for name, tool in self.tools.items()
        ]


def increments() -> dict[str, Any]:
    """The SET clause adding a ``Tally.counters()`` (bound by column name, prefixed
    ``add_``) to a session's counters, and stamping it."""
    values: dict[str, Any] = {
        name: sessions.c[name] + sa.bindparam(f"add_{name}", type_=sa.Integer) for name in COUNTERS
    }
    values["updated_at"] = database_clock()
    return values


async def add_tools(conn: AsyncConnection, session_id: str, tally: Tally) -> None:
    """Add the tool usage of ``tally`` to the session's."""
    rows = tally.tool_rows(session_id)
    if rows:
        await conn.execute(_upsert_tools(conn.dialect.name), rows)


_UPSERTS: dict[str, Any] = {}


def _upsert_tools(dialect: str) -> Any:
    stmt = _UPSERTS.get(dialect)
    if stmt is None:
        insert = (postgresql if dialect == "postgresql" else sqlite).insert(session_tools)
        stmt = _UPSERTS[dialect] = insert.on_conflict_do_update(
            index_elements=[session_tools.c.session_id, session_tools.c.tool_name],
            set_={
                name: session_tools.c[name] + insert.excluded[name]
                for name in ("calls", "failures", "total_duration_seconds", "duration_count")
            },
        )
    return stmt


def _in(column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    return column.in_(sa.bindparam("session_ids", expanding=True))


def _recount_statements() -> tuple[sa.Update, sa.Delete, sa.Insert]:
    ops = operations.c
    tool_call = ops.operation_type.in_(sorted(TOOL_CALL_TYPES))

    def number(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
        return sa.func.sum(sa.case((condition, 1), else_=0))

    counted = (
        sa.select(
            ops.session_id,
            sa.func.count().label("operation_count"),
            number(tool_call).label("tool_call_count"),
            number(sa.not_(ops.success)).label("failed_operation_count"),
            number(ops.operation_type == SUBAGENT_TYPE).label("subagent_count"),
            number(ops.operation_type == COMMIT_TYPE).label("commit_count"),
        )
        .where(_in(ops.session_id))
        .group_by(ops.session_id)
        .subquery("counted")
    )
    update = (
        sessions.update()
        .where(sessions.c.id == counted.c.session_id)
        .values({name: counted.c[name] for name in COUNTERS} | {"updated_at": database_clock()})
    )
    delete = session_tools.delete().where(_in(session_tools.c.session_id))
    failed = sa.or_(ops.operation_type.in_(sorted(TOOL_FAILURE_TYPES)), sa.not_(ops.success))
    usage = (
        sa.select(
            ops.session_id,
            ops.tool_name,
            sa.func.count(),
            number(failed),
            sa.func.coalesce(sa.func.sum(ops.duration_seconds), 0.0),
            sa.func.count(ops.duration_seconds),
        )
        .where(_in(ops.session_id), tool_call, ops.tool_name.is_not(None))
        .group_by(ops.session_id, ops.tool_name)
    )
    insert = session_tools.insert().from_select(
        [
            "session_id",
            "tool_name",
            "calls",
            "failures",
            "total_duration_seconds",
            "duration_count",
        ],
        usage,
    )
    return update, delete, insert


_RECOUNT = _recount_statements()


async def recount(conn: AsyncConnection, session_ids: Collection[str]) -> None:
    """Count the counters and tool usage of these sessions again from their stored
    operations, and stamp them (three statements). A session without operations is
    left as it is: its counters are 0 (operations go only with their session)."""
    if not session_ids:
        return
    params = {"session_ids": list(session_ids)}
    for stmt in _RECOUNT:
        await conn.execute(stmt, params)
