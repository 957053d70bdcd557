"""The server's SQLite checkpoints: off the writers' path, and the WAL kept short beside
long reads.

A commit writes to the WAL; a checkpoint copies the WAL back into the database file,
and only a WAL fully copied can be started over. SQLite's own automatic checkpoint runs
inside the commit that takes the WAL past 1,000 pages, so that writer (and, writes
being taken in turn, every writer queued behind it) waits for the copy and its fsyncs.
And a read holds the snapshot it started from: while reads overlap without a gap, as
long list queries side by side do, the WAL is never fully copied, and never started
over. It grew by about 5 MiB a second under 32 writers beside two long readers, each
commit's checkpoint copying what it could, and after a crash the next start had to read
all of it back (recovery) before serving.

So the server's connections do not checkpoint (``wal_autocheckpoint = 0``) and a
``Checkpointer`` task does, on a connection of its own, twice a second: a PASSIVE
checkpoint beside the writers, which copies what no read still needs and waits for
nobody (the bulk of the work), then another between two writes, holding the write lock
(``sessiongraph.db.writer``), for what was committed meanwhile: the next write then
finds the WAL all copied and starts it over. (Without that gap, writers back to back
always left some pages uncopied, and the WAL grew by 20 MiB a second.) When reads still
hold pages and the WAL has passed ``RESTART_PAGES``, a RESTART waits for the reads that
started before it (at most ``RESTART_WAIT_SECONDS``, else it tries again at the next
tick), the writers waiting on the lock with it.
Commands other than `serve` (import, seed) keep SQLite's automatic checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiosqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from sessiongraph.db import writer

logger = logging.getLogger("sessiongraph.db")

#: Seconds between two checkpoints (32 writers commit about 10 MiB in that time here).
INTERVAL_SECONDS = 0.5
#: Pages in the WAL (4 KiB each by default) beyond which it is started over: 16 MiB.
RESTART_PAGES = 4096
#: Longest a RESTART waits for earlier reads to finish, the writers waiting with it. A
#: read that started before the WAL was all copied holds it too, so this covers reads
#: (single statements: SQLite reads are not transactions here) of half a second.
RESTART_WAIT_SECONDS = 1.0


class Checkpointer:
    """Checkpoints ``engine``'s SQLite file in the background while started."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.database = engine.url.database
        self._task: asyncio.Task[None] | None = None
        self._connection: aiosqlite.Connection | None = None

    @property
    def applies(self) -> bool:
        """A SQLite file (an in-memory database has no WAL)."""
        return self.engine.dialect.name == "sqlite" and self.database not in (None, "", ":memory:")

    async def start(self) -> None:
        if not self.applies:
            return
        assert self.database is not None
        self._connection = await aiosqlite.connect(self.database, isolation_level=None)
        await self._connection.execute(f"PRAGMA busy_timeout = {RESTART_WAIT_SECONDS * 1000:.0f}")
        self._task = asyncio.create_task(self._run(), name="sqlite-checkpoints")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(INTERVAL_SECONDS)
            try:
                await self.checkpoint()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a checkpoint missed is made at the next tick
                logger.warning("SQLite checkpoint failed: %s", error)

    async def checkpoint(self) -> tuple[int, int]:
        """One round; returns the pages in the WAL and those copied, as SQLite reports
        them last."""
        # The bulk of the copying, beside the writers.
        log, copied = await self._checkpoint("PASSIVE")
        if log <= 0:  # nothing written since the WAL was started over (or no WAL)
            return log, copied
        # Between two writes: what was committed meanwhile. A write that begins with
        # the WAL all copied starts it over (SQLite does, if no read still uses it).
        async with writer.write_lock(self.engine):
            log, copied = await self._checkpoint("PASSIVE")
            if log > RESTART_PAGES and copied < log:
                # Reads that started before some commit hold it: wait for them.
                log, copied = await self._checkpoint("RESTART")
        return log, copied

    async def _checkpoint(self, mode: str) -> tuple[int, int]:
        assert self._connection is not None
        async with self._connection.execute(f"PRAGMA wal_checkpoint({mode})") as cursor:
            row = await cursor.fetchone()
        assert row is not None
        _busy, log, copied = row
        return int(log), int(copied)
