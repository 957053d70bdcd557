"""The database pool: open at start on PostgreSQL, never opening or closing connections
under load, replacing a connection the server closed before it is used, and recovering
from a lost connection or a restart of the server without a restart of its own."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from sessiongraph.app import create_app
from sessiongraph.config import Settings
from sessiongraph.db import migrate
from sessiongraph.db.engine import create_engine
from tests.helpers import GraphQLClient, insert_session
from tests.postgres import PostgresServer
from tests.test_unavailable import MESSAGE, UNAVAILABLE, assert_logged_as_outage

DASHBOARD = """{ sessions(first: 20) { totalCount nodes { id workflowName operationCount
  operations(first: 5) { nodes { operationType } } } } }"""
PAGE = "{ sessions(first: 5) { nodes { id } } }"


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[Starlette, GraphQLClient]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        if not settings.is_sqlite:  # one shared database: start each test empty
            async with app.state.engine.begin() as conn:
                await conn.execute(sa.text("TRUNCATE workflows, sessions, operations CASCADE"))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield app, GraphQLClient(http)


def driver_url(settings: Settings) -> str:
    return settings.database_url.replace("postgresql+asyncpg://", "postgresql://")


async def pooled_pids(engine: AsyncEngine, count: int) -> set[int]:
    """The server processes of ``count`` pooled connections (all of them held at once)."""
    connections = [await engine.connect() for _ in range(count)]
    try:
        return {await c.scalar(sa.text("SELECT pg_backend_pid()")) for c in connections}
    finally:
        for connection in connections:
            await connection.close()


@pytest.mark.postgres_only
async def test_the_pool_is_open_before_the_first_request(settings: Settings) -> None:
    opened: list[Any] = []
    app = create_app(settings.model_copy(update={"pool_size": 3}))
    engine: AsyncEngine = app.state.engine
    sa.event.listen(engine.sync_engine, "connect", lambda *_: opened.append(1))

    async with app.router.lifespan_context(app):
        # The migration check's connection is one of the three
        assert engine.sync_engine.pool.checkedin() == 3
        assert len(opened) == 3

        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as http:
            await GraphQLClient(http)(PAGE)
        assert len(opened) == 3


async def test_concurrent_requests_neither_open_nor_close_connections(settings: Settings) -> None:
    # The default pool: on PostgreSQL it was opened at start; SQLite opens files as
    # needed, never more than the pool's size.
    defaults = Settings.model_construct()
    settings = settings.model_copy(
        update={"pool_size": defaults.pool_size, "max_overflow": defaults.max_overflow}
    )
    async with running(settings) as (app, client):
        engine: AsyncEngine = app.state.engine
        for n in range(30):
            await insert_session(engine, id=f"s-{n:02}")
        events: list[str] = []
        for name in ("connect", "close", "close_detached", "invalidate"):
            sa.event.listen(engine.sync_engine, name, lambda *_, name=name: events.append(name))

        await asyncio.gather(*(client(DASHBOARD) for _ in range(64)))

        if settings.is_sqlite:
            assert set(events) <= {"connect"}
            assert len(events) <= settings.pool_size
        else:
            assert events == []


@pytest.mark.postgres_only
async def test_a_pooled_connection_the_server_closed_is_replaced_before_use(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(settings.model_copy(update={"pool_size": 2})) as (app, client):
        await insert_session(app.state.engine, id="s-1")
        # Given the server ended the pool's connections while they were idle (as a
        # restart, an idle timeout or an administrator does)
        pids = await pooled_pids(app.state.engine, 2)
        admin = await asyncpg.connect(driver_url(settings))
        try:
            await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) pid", pids)
            for _ in range(500):  # until the server processes are gone
                left = await admin.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", list(pids)
                )
                if not left:
                    break
                await asyncio.sleep(0.01)
        finally:
            await admin.close()
        await asyncio.sleep(0.05)  # the driver reads the end of each connection

        # When requests come
        with caplog.at_level(logging.WARNING):
            answers = [await client(PAGE) for _ in range(3)]

        # Then they are answered on new connections, with no error and no warning
        assert answers == [{"sessions": {"nodes": [{"id": "s-1"}]}}] * 3
        assert not (await pooled_pids(app.state.engine, 2)) & pids
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.postgres_only
async def test_a_connection_lost_during_a_request_is_unavailable_then_requests_succeed(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(settings.model_copy(update={"pool_size": 1})) as (app, client):
        await insert_session(app.state.engine, id="s-1")
        admin = await asyncpg.connect(driver_url(settings))
        try:
            # Given a request whose statement waits on the server (for a lock)
            lock = admin.transaction()
            await lock.start()
            await admin.execute("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")
            with caplog.at_level(logging.WARNING):
                request = asyncio.create_task(client.raw(PAGE))
                waiting = None
                while waiting is None:
                    await asyncio.sleep(0.01)
                    waiting = await admin.fetchval(
                        "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND application_name = 'sessiongraph'"
                    )

                # When its connection is lost
                await admin.execute("SELECT pg_terminate_backend($1)", waiting)
                body = await request
            await lock.rollback()
        finally:
            await admin.close()

        # Then its field fails as UNAVAILABLE, not INTERNAL
        assert body["data"] is None
        [error] = body["errors"]
        assert (error["path"], error["message"], error["extensions"]) == (
            ["sessions"],
            MESSAGE,
            UNAVAILABLE,
        )
        # Which of the two the driver reports depends on whether it read the server's
        # farewell before it saw the socket close.
        assert_logged_as_outage(
            caplog,
            "terminating connection due to administrator command",
            "connection was closed in the middle of operation",
        )

        # And the next requests succeed, on a new connection
        for _ in range(3):
            assert await client(PAGE) == {"sessions": {"nodes": [{"id": "s-1"}]}}


async def test_requests_succeed_again_after_postgres_restarts(own_postgres: PostgresServer) -> None:
    settings = Settings(database_url=own_postgres.url, pool_size=3)
    engine = create_engine(settings)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    async with running(settings) as (app, client):
        await insert_session(app.state.engine, id="s-1")
        assert await client(PAGE) == {"sessions": {"nodes": [{"id": "s-1"}]}}

        # When the database server restarts (the app's loop running meanwhile)
        restart = own_postgres.restart
        assert restart is not None
        await asyncio.to_thread(restart)

        # Then requests are answered as before, without restarting the app
        for _ in range(5):
            assert await client(PAGE) == {"sessions": {"nodes": [{"id": "s-1"}]}}
