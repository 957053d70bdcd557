"""Plain typed write functions: each call is one transaction, all or nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NoReturn

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sessiongraph.db import counters, replays, writer
from sessiongraph.db.columns import database_clock
from sessiongraph.db.errors import (
    CompletedBeforeStart,
    Conflict,
    OperationIdTaken,
    SessionFinished,
    SessionNotFound,
    TotalTokensTooLarge,
)
from sessiongraph.db.tables import operations, sessions, workflows
from sessiongraph.events import Event, EventKind, replaced

#: The largest token count stored: a GraphQL ``Int`` (a larger one could never be read).
MAX_TOKEN_COUNT = 2**31 - 1

#: Told of a write's event inside its transaction (see ``sessiongraph.events``).
Announce = Callable[[AsyncConnection, Event], Awaitable[None]]

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")


@dataclass(frozen=True, slots=True)
class Recorded:
    """The outcome of one ``record_operations`` call."""

    new_ids: list[str]
    already_present: list[str]
    #: What subscribers were told; None when the call stored nothing new.
    event: Event | None = None


@dataclass(frozen=True, slots=True)
class Written:
    """The outcome of ``start_session`` and ``complete_session``."""

    #: What subscribers were told; None when the call was a retry of one whose write is
    #: stored already (see ``sessiongraph.db.replays``): then it wrote nothing.
    event: Event | None


class _Stored(Exception):
    """The call is the stored write again: leave its transaction, writing nothing."""


async def start_session(
    *,
    engine: AsyncEngine,
    row: dict[str, Any],
    workflow_name: str | None,
    announce: Announce,
    chosen: frozenset[str] = frozenset(),
) -> Written:
    """Insert a session (and its workflow when new, or name it when a name is given).

    An id that is taken is decided by the INSERT's conflict, so concurrent retries
    race safely: the same values again (``chosen``, the columns the server filled in
    for this call, aside) write nothing and return ``Written(None)``; other values are
    a ``Conflict`` naming the columns."""
    event = Event(EventKind.STARTED, row["id"])
    try:
        async with writer.transaction(engine) as conn:
            if row["workflow_id"] is not None:
                await upsert_workflows(conn, {row["workflow_id"]: workflow_name})
            insert = (
                dialect_insert(conn)(sessions)
                .on_conflict_do_nothing(index_elements=[sessions.c.id])
                .returning(sessions.c.id)
            )
            if (await conn.execute(insert, row)).first() is None:
                # Taken: by a committed session (PostgreSQL waits for a concurrent
                # INSERT of the id to commit or roll back first; SQLite's write lock
                # serializes), which this transaction now reads.
                stored = await conn.execute(
                    sa.select(*(sessions.c[name] for name in replays.START_COLUMNS)).where(
                        sessions.c.id == row["id"]
                    )
                )
                differences = replays.start_differences(stored.mappings().one(), row, chosen=chosen)
                if differences:
                    raise Conflict(row["id"], differences)
                raise _Stored
            await announce(conn, event)
    except _Stored:  # rolled back: not even the workflow's name was written
        return Written(None)
    return Written(event)


def dialect_insert(conn: AsyncConnection) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT."""
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


async def upsert_workflows(conn: AsyncConnection, names: dict[str, str | None]) -> None:
    """Create the workflows that are new; a name that is not None replaces the stored one."""
    stmt = dialect_insert(conn)(workflows)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[workflows.c.id],
            set_={"name": sa.func.coalesce(stmt.excluded.name, workflows.c.name)},
        ),
        [{"id": key, "name": name} for key, name in names.items()],
    )


async def _session_status(
    conn: AsyncConnection, session_id: str, *, lock: bool = False
) -> str | None:
    stmt = sa.select(sessions.c.status).where(sessions.c.id == session_id)
    if lock and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()  # serializes with completeSession
    status: str | None = await conn.scalar(stmt)
    return status


def _locked_statement(dialect: str) -> sa.Select[Any]:
    stmt = sa.select(
        sessions.c.status, sessions.c.updated_at, *(sessions.c[n] for n in counters.COUNTERS)
    ).where(sessions.c.id == sa.bindparam("id"))
    return stmt.with_for_update() if dialect == "postgresql" else stmt  # as _session_status


#: A session's status, counters and stamp (what a batch replaces), by dialect; on
#: PostgreSQL, locking its row.
_LOCKED = {dialect: _locked_statement(dialect) for dialect in ("sqlite", "postgresql")}


#: Adds a batch's ``Tally`` to its session's counters, when the session has not finished.
_COUNT_RECORDED = (
    sessions.update()
    .where(
        sessions.c.id == sa.bindparam("session_id"),
        sessions.c.status.not_in(sorted(TERMINAL_STATUSES)),
    )
    .values(**counters.increments())
)


async def record_operations(
    *, engine: AsyncEngine, session_id: str, rows: Sequence[dict[str, Any]], announce: Announce
) -> Recorded:
    """Store the operations of ``rows`` not stored yet; ids already there are reported.

    An operation id stored for another session (``OperationIdTaken``) is refused,
    and so is a session that does not exist or has finished (``SessionNotFound``,
    ``SessionFinished``): then nothing of the batch is stored.
    """
    ids = [row["operation_id"] for row in rows]
    async with writer.transaction(engine) as conn:
        # What the batch replaces is read with the lock, for its event.
        locked = (await conn.execute(_LOCKED[conn.dialect.name], {"id": session_id})).first()
        if locked is None:
            raise SessionNotFound(session_id)
        status = locked.status
        _refuse_if_finished(session_id, status)
        owners = await _owners(conn, ids)
        _check_owners(owners, ids, session_id)
        new = [row for row in rows if row["operation_id"] not in owners]
        keys: dict[str, int] = {}  # operation id -> operations.id, for those stored now
        event = None
        if new:
            # A concurrent call (a retried batch) may store some of these first:
            # skip those rather than fail, then check whom they belong to.
            stmt = (
                dialect_insert(conn)(operations)
                .on_conflict_do_nothing(index_elements=[operations.c.operation_id])
                .returning(operations.c.operation_id, operations.c.id)
            )
            keys = dict((await conn.execute(stmt, new)).all())
            inserted = set(keys)
            raced = [row["operation_id"] for row in new if row["operation_id"] not in inserted]
            if raced:
                late = await _owners(conn, raced)
                _check_owners(late, ids, session_id)
                owners |= late
                new = [row for row in new if row["operation_id"] in inserted]
        if keys:
            # Counted from the rows this INSERT stored, not from the batch: what a
            # concurrent or retried batch stored first is counted by that batch.
            tally = counters.Tally.of(new)
            params = {f"add_{name}": value for name, value in tally.counters().items()}
            counted = await conn.execute(_COUNT_RECORDED, {"session_id": session_id, **params})
            if counted.rowcount != 1:
                # The session was completed (or deleted) since it was first read: not
                # while the row lock (PostgreSQL) or the write lock taken at BEGIN
                # IMMEDIATE (SQLite, see ``writer``) holds it, so a guard only.
                _refuse_if_finished(session_id, await _session_status(conn, session_id))
                raise SessionNotFound(session_id)
            await counters.add_tools(conn, session_id, tally)
            # The event names the span of operations.id the batch took: on PostgreSQL
            # the session's row lock keeps other batches for this session out of it
            # (the importer takes the same lock), on SQLite the database lock does.
            span = (min(keys.values()), max(keys.values()))
            old = locked._mapping
            now = {name: old[name] + n for name, n in tally.counters().items()}
            before = replaced(old, now | {"updated_at": database_clock()})
            event = Event(EventKind.RECORDED, session_id, span, before)
            await announce(conn, event)
    return Recorded(
        new_ids=[row["operation_id"] for row in new],
        already_present=[i for i in ids if i in owners],
        event=event,
    )


def _refuse_if_finished(session_id: str, status: str | None) -> None:
    if status is not None and status in TERMINAL_STATUSES:
        raise SessionFinished(session_id, status)


async def _owners(conn: AsyncConnection, operation_ids: Sequence[str]) -> dict[str, str]:
    """The session of each of ``operation_ids`` already stored."""
    stored = await conn.execute(
        sa.select(operations.c.operation_id, operations.c.session_id).where(
            operations.c.operation_id.in_(operation_ids)
        )
    )
    return {row.operation_id: row.session_id for row in stored}


def _check_owners(owners: dict[str, str], ids: Sequence[str], session_id: str) -> None:
    for index, operation_id in enumerate(ids):
        owner = owners.get(operation_id)
        if owner is not None and owner != session_id:
            raise OperationIdTaken(operation_id, owner, index)


@dataclass(frozen=True, slots=True)
class Completion:
    status: str
    #: None for now, as the database layer reads the clock (a retry is not compared on it).
    completed_at: datetime | None
    error_message: str | None
    input_tokens: int | None
    output_tokens: int | None
    cache_creation_tokens: int | None
    cache_read_tokens: int | None
    total_tokens: int | None
    total_cost_usd: Decimal | None
    cost_by_model: dict[str, str] | None

    def given(self) -> dict[str, Any]:
        """The columns this completion sets whatever was counted, and those it was given:
        what a retry of it is compared on."""
        values: dict[str, Any] = {"status": self.status, "error_message": self.error_message}
        for name in ("completed_at", *TOKEN_COLUMNS, "total_tokens", "total_cost_usd"):
            if getattr(self, name) is not None:
                values[name] = getattr(self, name)
        if self.cost_by_model is not None:
            values["cost_by_model"] = self.cost_by_model
        return values


async def complete_session(
    *, engine: AsyncEngine, session_id: str, completion: Completion, announce: Announce
) -> Written:
    """Finish a running or pending session. Refused, changing nothing, when there is no
    such session or when ``completion`` ends before the session started.

    A session finished already (by an earlier or a concurrent call) is compared with
    ``completion``: the same figures write nothing and return ``Written(None)``, other
    ones are a ``Conflict`` naming the columns (``sessiongraph.db.replays``)."""
    try:
        async with writer.transaction(engine) as conn:
            row = await _completed_row(conn, session_id, lock=True)
            if row["status"] in TERMINAL_STATUSES:
                _replayed(conn, row, completion)
            completed_at = completion.completed_at or datetime.now(UTC)
            values: dict[str, Any] = {
                "status": completion.status,
                "completed_at": completed_at,
                "error_message": completion.error_message,
                "updated_at": database_clock(),
            }
            if row["started_at"] is not None:
                if completed_at < row["started_at"]:
                    raise CompletedBeforeStart(session_id, row["started_at"], completed_at)
                values["duration_seconds"] = (completed_at - row["started_at"]).total_seconds()
            given = {
                name: getattr(completion, name)
                for name in TOKEN_COLUMNS
                if getattr(completion, name) is not None
            }
            values |= given
            if completion.total_tokens is not None:
                values["total_tokens"] = completion.total_tokens
            elif given:
                total = sum(given.get(name, row[name]) for name in TOKEN_COLUMNS)
                if total > MAX_TOKEN_COUNT:
                    raise TotalTokensTooLarge(session_id, total)
                values["total_tokens"] = total
            if completion.total_cost_usd is not None:
                values["total_cost_usd"] = completion.total_cost_usd
            if completion.cost_by_model is not None:
                values["cost_by_model"] = completion.cost_by_model
            # Conditional, so of two concurrent completions only one applies (SQLite
            # has no row lock; on PostgreSQL the FOR UPDATE above already serializes).
            done = await conn.execute(
                sessions.update()
                .where(sessions.c.id == session_id, sessions.c.status.not_in(TERMINAL_STATUSES))
                .values(**values)
            )
            if done.rowcount != 1:
                # Another completion won since the read: this write transaction sees it.
                _replayed(conn, await _completed_row(conn, session_id), completion)
            event = Event(EventKind.COMPLETED, session_id, before=replaced(row, values))
            await announce(conn, event)
    except _Stored:
        return Written(None)
    return Written(event)


async def _completed_row(
    conn: AsyncConnection, session_id: str, *, lock: bool = False
) -> sa.RowMapping:
    stmt = sa.select(sessions).where(sessions.c.id == session_id)
    if lock and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).mappings().first()
    if row is None:
        raise SessionNotFound(session_id)
    return row


def _replayed(conn: AsyncConnection, row: sa.RowMapping, completion: Completion) -> NoReturn:
    """A finished session and another completion of it: the same one again (``_Stored``)
    or a ``Conflict``."""
    differences = replays.completion_differences(
        row,
        completion.given(),
        token_columns=TOKEN_COLUMNS,
        sqlite=conn.dialect.name == "sqlite",
    )
    if differences:
        raise Conflict(row["id"], differences)
    raise _Stored
