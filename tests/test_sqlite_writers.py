"""SQLite under many writers at once, and beside long reads (sessiongraph.db.writer,
sessiongraph.db.checkpoints)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from starlette.applications import Starlette

from sessiongraph.app import create_app
from sessiongraph.config import Settings
from sessiongraph.db import writer
from sessiongraph.db.tables import workflows

pytestmark = pytest.mark.sqlite_only

START = "mutation($id: String!) { startSession(input: {id: $id}) { id } }"
RECORD = """mutation($id: String!, $ops: [OperationInput!]!) {
  recordOperations(sessionId: $id, operations: $ops) { recordedOperationIds } }"""
COMPLETE = "mutation($id: String!) { completeSession(id: $id, status: COMPLETED) { id } }"
LIST = """{ sessions(first: 40) { totalCount nodes { id status operationCount
  operations(first: 10) { nodes { operationId toolName } } } } }"""


def no_busy_wait(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.cursor().execute("PRAGMA busy_timeout = 0")


@asynccontextmanager
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def post(http: httpx.AsyncClient, query: str, **variables: Any) -> list[Any]:
    """The errors of one request (none when it succeeded)."""
    response = await http.post("/graphql", json={"query": query, "variables": variables})
    errors: list[Any] = response.json().get("errors") or []
    return errors


def operations(session: str, batch: int, size: int, output: str = "") -> list[dict[str, Any]]:
    return [
        {
            "operationId": f"{session}-{batch}-{n}",
            "operationType": "tool_execution_completed",
            "toolName": "Read",
            "toolOutput": output or None,
        }
        for n in range(size)
    ]


async def test_32_writers_beside_readers_never_find_the_database_locked(
    settings: Settings,
) -> None:
    # Given the app running 40 requests at once, its connections' busy timeout 0: a
    # write that met another inside SQLite would fail at once ("database is locked")
    app = create_app(settings.model_copy(update={"max_concurrent_requests": 40}))
    sa.event.listen(app.state.engine.sync_engine, "connect", no_busy_wait)
    errors: list[Any] = []
    done = asyncio.Event()

    async def writer(http: httpx.AsyncClient, session: str) -> None:
        errors.extend(await post(http, START, id=session))
        for batch in range(2):
            errors.extend(await post(http, RECORD, id=session, ops=operations(session, batch, 5)))
        errors.extend(await post(http, COMPLETE, id=session))

    async def reader(http: httpx.AsyncClient) -> None:
        while not done.is_set():
            errors.extend(await post(http, LIST))

    async with client(app) as http:
        # When 32 writers start, record and complete a session each, beside 2 readers
        readers = [asyncio.create_task(reader(http)) for _ in range(2)]
        await asyncio.gather(*(writer(http, f"w-{n}") for n in range(32)))
        done.set()
        await asyncio.gather(*readers)
        response = await http.post("/graphql", json={"query": LIST})

    # Then nothing failed, and every session holds its 10 operations, completed
    assert errors == []
    nodes = response.json()["data"]["sessions"]["nodes"]
    assert sorted((node["id"], node["status"], node["operationCount"]) for node in nodes) == sorted(
        (f"w-{n}", "COMPLETED", 10) for n in range(32)
    )


def hold_snapshots(database: Path, stop: threading.Event, offset: float) -> None:
    """A long read after another, each holding its snapshot for 0.25 s; two of these,
    half a read apart, always overlap."""
    time.sleep(offset)
    connection = sqlite3.connect(database, isolation_level=None)
    try:
        while not stop.is_set():
            connection.execute("BEGIN")
            connection.execute("SELECT count(*) FROM operations").fetchall()
            time.sleep(0.25)
            connection.execute("COMMIT")
    finally:
        connection.close()


async def test_the_wal_is_started_over_beside_overlapping_long_reads(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a server whose WAL is to be started over past 256 pages (1 MiB; 16 MiB by
    # default), and long reads that overlap without a gap, each holding its snapshot
    monkeypatch.setattr("sessiongraph.db.checkpoints.RESTART_PAGES", 256)
    database = Path(sa.make_url(settings.database_url).database or "")
    wal = database.with_name(database.name + "-wal")
    app = create_app(settings)
    stop = threading.Event()
    async with client(app) as http:
        readers = [
            asyncio.create_task(asyncio.to_thread(hold_snapshots, database, stop, offset))
            for offset in (0, 0.125)
        ]
        try:
            # When 16 MiB of operations are written meanwhile, for about 4 s
            assert await post(http, START, id="s") == []
            started = time.monotonic()
            for batch in range(32):
                ops = operations("s", batch, 100, output="x" * 5000)
                assert await post(http, RECORD, id="s", ops=ops) == []
                await asyncio.sleep(max(0.0, started + 0.125 * batch - time.monotonic()))
            # (the file's size: the most it held; the last connection's close removes it)
            largest = wal.stat().st_size
        finally:
            stop.set()
            await asyncio.gather(*readers)

    # Then the WAL was started over as it went: it never held all of that (SQLite's
    # own checkpoints could never copy all of it, so it grew by all of it)
    assert largest < 8 * 2**20


async def test_a_write_waits_for_another_process_at_most_the_busy_timeout(
    settings: Settings,
) -> None:
    # Given a server with a busy timeout of 0.3 s, and another process's write (an
    # import's) under way
    database = sa.make_url(settings.database_url).database or ""
    app = create_app(settings.model_copy(update={"sqlite_busy_timeout_seconds": 0.3}))
    async with client(app) as http:
        assert await post(http, START, id="s") == []
        other = sqlite3.connect(database, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            # When a batch is recorded meanwhile
            started = time.monotonic()
            errors = await post(http, RECORD, id="s", ops=operations("s", 0, 1))
            waited = time.monotonic() - started
        finally:
            other.execute("ROLLBACK")
            other.close()

        # Then it fails as a retryable outage after about the busy timeout (not
        # SQLite's default 5 s), and goes in once the other write is done
        assert [error["extensions"]["code"] for error in errors] == ["UNAVAILABLE"]
        assert 0.25 < waited < 3
        assert await post(http, RECORD, id="s", ops=operations("s", 0, 1)) == []


async def test_a_write_transaction_does_not_wait_for_turns_of_a_busy_loop(
    settings: Settings,
) -> None:
    # Given the app's event loop busy as beside long reads: a task that holds it for
    # 20 ms at a time, yielding in between
    app = create_app(settings)
    engine = app.state.engine
    done = asyncio.Event()

    async def busy() -> None:
        while not done.is_set():
            time.sleep(0.02)  # noqa: ASYNC251 (the loop's thread at work, as a page is built)
            await asyncio.sleep(0)

    async with app.router.lifespan_context(app):
        hog = asyncio.create_task(busy())
        try:
            # When a write transaction runs its statements and commits meanwhile
            async with writer.transaction(engine) as conn:
                started = time.monotonic()
                for n in range(5):
                    await conn.execute(workflows.insert(), {"id": f"wf-{n}", "name": None})
                    assert await conn.scalar(sa.select(sa.func.count()).select_from(workflows))
            held = time.monotonic() - started
        finally:
            done.set()
            await hog
        async with engine.connect() as conn:
            stored = await conn.scalar(sa.select(sa.func.count()).select_from(workflows))

    # Then, holding the write lock, it never waited for the loop: each statement used
    # to be 3 or 4 hops to aiosqlite's thread and back, each waiting out a 20 ms turn
    # (here 0.3 s and more, every writer queued behind it waiting as long)
    assert held < 0.1
    assert stored == 5
