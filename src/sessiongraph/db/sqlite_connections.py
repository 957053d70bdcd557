"""aiosqlite connections that can run a write transaction on the event loop's own thread.

aiosqlite runs each call (open a cursor, execute, fetch, close it, commit) on a thread of
the connection's and hands the result back to the event loop: a thread hop, about 22 of
them for a ``recordOperations`` batch. Each hop waits for the loop to come round, after
whatever else is ready to run: beside long reads, the parts of a 200-session page being
built and serialized. A write transaction holds the process's write lock
(``sessiongraph.db.writer``) for all of its hops, so every writer queued behind it waited
for them too: the lock was held 20-30 ms for a 10-operation batch that SQLite itself
writes in well under a millisecond, and the writers' rate was that of the loop's turns.

So while ``inline`` is set (``writer.transaction`` sets it once its ``BEGIN IMMEDIATE``
holds SQLite's write lock) the connection calls sqlite3 directly, on the loop's thread,
without a hop: the transaction's statements and its commit run back to back. Nothing
there waits on another connection (the write lock is held already, and in WAL mode
readers never block a writer), so the loop is held for only as long as SQLite works.
The ``BEGIN IMMEDIATE`` itself still goes through the thread: it may wait, up to the busy
timeout, for another process's write, and the loop must not wait with it.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import aiosqlite
from sqlalchemy.ext.asyncio import AsyncEngine


class Connection(aiosqlite.Connection):
    """An aiosqlite connection whose calls run on the caller's thread while ``inline``."""

    inline: bool = False

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self.inline:
            return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]
        if self._connection is None:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)


def connector(engine: Callable[[], AsyncEngine]) -> Callable[[], Awaitable[Connection]]:
    """The ``async_creator`` of ``engine()``'s connections: a ``Connection`` opened with
    the arguments SQLAlchemy's aiosqlite dialect would use for its URL, and usable from
    the loop's thread as well as from its own (``check_same_thread=False``: only one of
    them uses it at a time)."""

    async def connect() -> Connection:
        sync_engine = engine().sync_engine
        args, options = sync_engine.dialect.create_connect_args(sync_engine.url)
        options = {**options, "check_same_thread": False}
        connection = Connection(functools.partial(sqlite3.connect, *args, **options), 64)
        # As the dialect does: a connection never closed does not keep the process alive.
        # (aiosqlite 0.22 holds its thread; before, the connection was the thread.)
        thread: Any = getattr(connection, "_thread", connection)
        thread.daemon = True
        await connection
        return connection

    return connect


def driver_connection(raw: Any) -> Connection | None:
    """The ``Connection`` behind a pooled connection (``AsyncConnection.get_raw_connection``),
    None if it is not one (another driver)."""
    found = getattr(raw, "driver_connection", None)
    return found if isinstance(found, Connection) else None
