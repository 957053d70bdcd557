"""A database that cannot serve now (pool exhausted, server unreachable) is UNAVAILABLE at
the field's path, with ``retryAfterSeconds``: logged once as a warning, not as a bug."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from sessiongraph.app import create_app
from sessiongraph.config import Settings
from sessiongraph.db import outages
from sessiongraph.errors import Unavailable
from tests.helpers import GraphQLClient
from tests.live import WSClient, free_port, serve

SESSIONS = "{ sessions(first: 5) { totalCount edges { node { id } } } }"
START = """mutation ($id: String!) {
  startSession(input: {id: $id, startedAt: "2026-04-18T08:00:00Z"}) { id status } }"""
SESSION_UPDATED = "subscription ($id: String!) { sessionUpdated(id: $id) { id status } }"

UNAVAILABLE = {"code": "UNAVAILABLE", "retryAfterSeconds": Unavailable.RETRY_AFTER_SECONDS}
MESSAGE = "The database is unavailable right now; retry the request later."


@pytest.fixture(params=[True, False], ids=["compiled", "plain"])
async def one_connection(
    settings: Settings, request: pytest.FixtureRequest
) -> AsyncIterator[Starlette]:
    """An app whose pool holds one connection and waits 0.2 s for it to come free."""
    app = create_app(
        settings.model_copy(
            update={
                "pool_size": 1,
                "max_overflow": 0,
                "pool_timeout_seconds": 0.2,
                "compiled_execution": request.param,
            }
        )
    )
    async with app.router.lifespan_context(app):
        if not settings.is_sqlite:  # one shared database: start each test empty
            async with app.state.engine.begin() as conn:
                await conn.execute(sa.text("TRUNCATE workflows, sessions, operations CASCADE"))
        yield app


@pytest.fixture
async def client(one_connection: Starlette) -> AsyncIterator[GraphQLClient]:
    transport = httpx.ASGITransport(app=one_connection)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield GraphQLClient(http)


@asynccontextmanager
async def exhausted(app: Starlette) -> AsyncIterator[None]:
    """The app's only connection, held by the test: a request waits, then gets none."""
    engine: AsyncEngine = app.state.engine
    async with engine.connect():
        yield


def assert_logged_as_outage(caplog: pytest.LogCaptureFixture, *causes: str) -> None:
    """One warning line per outage, naming its cause; nothing logged as an error."""
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    warnings = [r for r in caplog.records if r.name == outages.logger.name]
    assert warnings, caplog.records
    for record in warnings:
        assert record.levelno == logging.WARNING
        assert record.exc_info is None
        assert "\n" not in record.getMessage()
        assert any(cause in record.getMessage() for cause in causes), record.getMessage()


async def test_a_query_that_gets_no_connection_is_unavailable(
    one_connection: Starlette, client: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    # Given an app whose only connection is taken
    with caplog.at_level(logging.WARNING):
        async with exhausted(one_connection):
            # When a query needs the database
            body = await client.raw(SESSIONS)

    # Then the field fails as UNAVAILABLE (HTTP 200, checked by the client), not INTERNAL
    assert body["data"] is None
    [error] = body["errors"]
    assert error["path"] == ["sessions"]
    assert error["message"] == MESSAGE
    assert error["extensions"] == UNAVAILABLE
    assert_logged_as_outage(caplog, "TimeoutError: QueuePool limit")

    # And once the connection is free again the same query answers
    assert await client(SESSIONS) == {"sessions": {"totalCount": 0, "edges": []}}


async def test_a_mutation_that_gets_no_connection_is_unavailable(
    one_connection: Starlette, client: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    # Given an app whose only connection is taken
    with caplog.at_level(logging.WARNING):
        async with exhausted(one_connection):
            # When a mutation writes
            error = await client.error(START, {"id": "s-1"}, code="UNAVAILABLE")

    # Then the field fails as UNAVAILABLE, and nothing was stored
    assert error["path"] == ["startSession"]
    assert error["message"] == MESSAGE
    assert error["extensions"] == UNAVAILABLE
    assert_logged_as_outage(caplog, "TimeoutError: QueuePool limit")
    assert await client(SESSIONS) == {"sessions": {"totalCount": 0, "edges": []}}

    # And retried once the connection is free, it succeeds
    assert await client(START, {"id": "s-1"}) == {
        "startSession": {"id": "s-1", "status": "RUNNING"}
    }


async def test_an_unreachable_postgres_is_unavailable(caplog: pytest.LogCaptureFixture) -> None:
    # Given an app whose PostgreSQL server is not there (nothing listens on the port).
    # Its lifespan is not run: start-up checks the schema and refuses to start without
    # a database; this is a server that went away after start-up.
    settings = Settings(database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x")
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            client = GraphQLClient(http)
            with caplog.at_level(logging.WARNING):
                # When a query and a mutation need the database
                query_error = await client.error(SESSIONS, code="UNAVAILABLE")
                write_error = await client.error(START, {"id": "s-1"}, code="UNAVAILABLE")
    finally:
        await app.state.engine.dispose()

    # Then both fail as UNAVAILABLE at their field, saying nothing of the address
    for error, field in ((query_error, "sessions"), (write_error, "startSession")):
        assert error["path"] == [field]
        assert error["message"] == MESSAGE
        assert error["extensions"] == UNAVAILABLE
    assert_logged_as_outage(caplog, "ConnectionRefusedError", "OSError")


async def test_a_subscription_whose_read_gets_no_connection_ends_unavailable(
    one_connection: Starlette, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a subscriber of an app whose only connection is taken
    async with serve(one_connection) as url, WSClient.open(url) as ws:
        with caplog.at_level(logging.WARNING):
            async with exhausted(one_connection):
                # When the subscription reads the session's current state
                sub = await ws.subscribe(SESSION_UPDATED, {"id": "s-1"})
                reply = await ws.receive()
                end = await ws.receive()

    # Then it ends with an UNAVAILABLE error, not INTERNAL
    assert reply["id"] == sub
    errors: list[dict[str, Any]] = (
        reply["payload"]["errors"] if reply["type"] == "next" else reply["payload"]
    )
    assert [(e["message"], e["extensions"]) for e in errors] == [(MESSAGE, UNAVAILABLE)]
    assert end == {"id": sub, "type": "complete"}
    assert_logged_as_outage(caplog, "TimeoutError: QueuePool limit")


def _sqlite_errors(path: Path) -> tuple[sqlite3.OperationalError, sqlite3.OperationalError]:
    """SQLite's own errors: a write to a database another connection holds (past a busy
    timeout of 0), and a read of a table that does not exist."""
    holder = sqlite3.connect(path, isolation_level=None)
    other = sqlite3.connect(path, timeout=0)
    try:
        holder.execute("CREATE TABLE t (x)")
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError) as locked:
            other.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(sqlite3.OperationalError) as missing:
            other.execute("SELECT * FROM nope")
    finally:
        other.close()
        holder.close()
    return locked.value, missing.value


def test_outages_are_told_from_bugs(tmp_path: Path) -> None:
    locked, missing = _sqlite_errors(tmp_path / "locked.db")
    outage_errors: list[BaseException] = [
        sa.exc.TimeoutError("QueuePool limit of size 1 overflow 0 reached"),
        sa.exc.OperationalError("SELECT 1", {}, locked),
        sa.exc.DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True),
        ConnectionRefusedError(111, "Connect call failed"),
        OSError("Multiple exceptions: [Errno 111] ..."),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.exceptions.TooManyConnectionsError("too many clients"),
        asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
        asyncpg.exceptions.SerializationError("could not serialize access"),
        asyncpg.exceptions.LockNotAvailableError("could not obtain lock"),
    ]
    bugs: list[BaseException] = [
        sa.exc.OperationalError("SELECT * FROM nope", {}, missing),
        sa.exc.IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed")),
        sa.exc.ProgrammingError("SELEC", {}, sqlite3.ProgrammingError("syntax")),
        sa.exc.DataError("INSERT", {}, Exception("value too long")),
        asyncpg.exceptions.UniqueViolationError("duplicate key"),
        sa.exc.ArgumentError("bad argument"),
        ValueError("a bug"),
    ]

    assert [outages.is_outage(e) for e in outage_errors] == [True] * len(outage_errors)
    assert [outages.is_outage(e) for e in bugs] == [False] * len(bugs)
    # A statement cancelled at the statement timeout: a read asked for too much, a
    # write (small statements) waited on locks
    cancelled = asyncpg.exceptions.QueryCanceledError("canceling statement due to timeout")
    assert (outages.is_outage(cancelled), outages.is_outage(cancelled, writing=True)) == (
        False,
        True,
    )
