"""Write transactions: on SQLite, one at a time per process, each ``BEGIN IMMEDIATE``.

SQLite lets one connection write at a time. Connections of one process that wanted to
write at once used to queue in SQLite's busy handler, which sleeps and polls (1 ms, then
longer, up to 100 ms between tries) in no order: under 16 or more writers one of them
now and then lost every poll for the whole busy timeout, and its write failed with
"database is locked" (about 1 in 1,000 under 16-24 writers). Here they queue on an
asyncio lock instead, first come first served, without polling, and only the holder asks
SQLite for its write lock, which then only another process can be holding (an import,
`db upgrade`, a seed): that wait alone is bounded by the busy timeout.

``BEGIN IMMEDIATE`` takes SQLite's write lock as the transaction begins. The driver's
own ``BEGIN`` came at the first INSERT or UPDATE, so what a write read before it (is the
session finished? who owns these operation ids?) was read outside its transaction, and
another process could write in between.

Once ``BEGIN IMMEDIATE`` holds the write lock, the rest of the transaction runs on the
event loop's thread, without aiosqlite's thread hops (``sqlite_connections``): the lock
is held for as long as SQLite takes, not for as many turns of a busy loop.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sessiongraph.db import sqlite_connections

#: Per engine, the lock its writes take turns on, with the event loop it belongs to (an
#: asyncio lock serves one loop; an engine used from a second loop gets a new one).
_locks: weakref.WeakKeyDictionary[sa.Engine, tuple[asyncio.AbstractEventLoop, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def write_lock(engine: AsyncEngine) -> asyncio.Lock:
    """The lock this process's write transactions on ``engine`` take turns on."""
    loop = asyncio.get_running_loop()
    held = _locks.get(engine.sync_engine)
    if held is None or held[0] is not loop:
        held = _locks[engine.sync_engine] = (loop, asyncio.Lock())
    return held[1]


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection in a write transaction, committed when the block ends (rolled back
    if it raises), like ``engine.begin()``; on SQLite, the process's only one at a time,
    holding the database's write lock from its first statement."""
    if engine.dialect.name != "sqlite":
        async with engine.begin() as conn:
            yield conn
        return
    # The lock first, then a connection: a write waiting its turn holds no connection.
    async with write_lock(engine):
        conn = await engine.connect().start()
        driver = None
        try:
            driver = sqlite_connections.driver_connection(await conn.get_raw_connection())
            async with conn.begin():
                # On the connection's thread: it may wait for another process's write.
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
                if driver is not None:
                    driver.inline = True
                yield conn
        finally:
            try:
                await conn.close()  # inline too: the pool's reset of it
            finally:
                if driver is not None:
                    driver.inline = False
