"""Fixtures: a fresh database and app per test, an HTTP client, factories, a SQL recorder."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from sessiongraph.app import create_app
from sessiongraph.config import Settings
from sessiongraph.db import migrate
from sessiongraph.db.engine import create_engine
from tests.helpers import GraphQLClient, SqlRecorder, is_plan_setting
from tests.postgres import (
    PostgresServer,
    PostgresUnavailable,
    throwaway_postgres,
    throwaway_server,
)

REQUIRE_POSTGRES = "SESSIONGRAPH_REQUIRE_POSTGRES"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: the test relies on SQLite itself")
    config.addinivalue_line("markers", "postgres_only: the test relies on PostgreSQL itself")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run database-specific tests on their database only, rather than skipping the rest."""
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        database = callspec.params.get("settings") if callspec is not None else None
        wrong = (database == "postgresql" and item.get_closest_marker("sqlite_only")) or (
            database == "sqlite" and item.get_closest_marker("postgres_only")
        )
        (dropped if wrong else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


_postgres_skipped: list[str] = []
#: Why GraphiQL's tests that need npm or chromium did not run, if some did not
#: (test_graphiql.py, test_graphiql_browser.py).
graphiql_skipped: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if graphiql_skipped:
        terminalreporter.section("GraphiQL")
        terminalreporter.write_line(
            f"GRAPHIQL TESTS WERE SKIPPED: {'; '.join(sorted(set(graphiql_skipped)))}. "
            "CI sets SESSIONGRAPH_REQUIRE_NODE=1 and SESSIONGRAPH_REQUIRE_BROWSER=1 to fail "
            "instead.",
            yellow=True,
            bold=True,
        )
    if _postgres_skipped:
        terminalreporter.section("PostgreSQL")
        terminalreporter.write_line(
            f"THE POSTGRESQL HALF WAS SKIPPED: {_postgres_skipped[0]}. Install PostgreSQL "
            f"(its pg_ctl) or set SESSIONGRAPH_TEST_POSTGRES_URL to run it.",
            yellow=True,
            bold=True,
        )


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated database on a throwaway PostgreSQL server, shared by the session's tests."""
    try:
        server = throwaway_postgres()
        url = server.__enter__()
    except PostgresUnavailable as error:
        if os.environ.get(REQUIRE_POSTGRES):
            pytest.fail(f"PostgreSQL is required ({REQUIRE_POSTGRES} is set): {error}")
        _postgres_skipped.append(str(error))
        pytest.skip(f"PostgreSQL half skipped: {error}")
    try:
        asyncio.run(migrate_schema(url))
        yield url
    finally:
        server.__exit__(None, None, None)


async def migrate_schema(url: str) -> None:
    """Creates or upgrades the schema of the database at ``url``."""
    engine = create_engine(Settings(database_url=url))
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the test's own, which it may restart."""
    try:
        with throwaway_server() as server:
            if server.restart is None:
                pytest.skip("the PostgreSQL server is given (SESSIONGRAPH_TEST_POSTGRES_URL)")
            yield server
    except PostgresUnavailable as error:
        if os.environ.get(REQUIRE_POSTGRES):
            pytest.fail(f"PostgreSQL is required ({REQUIRE_POSTGRES} is set): {error}")
        pytest.skip(f"no PostgreSQL: {error}")


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Every test that uses the app runs once on SQLite and once on PostgreSQL."""
    if request.param == "postgresql":
        # Each app opens its whole pool at start, and the suite starts about a thousand:
        # 4 connections, not the default 16 (test_pool.py runs the default).
        return Settings(database_url=request.getfixturevalue("postgres_url"), pool_size=4)
    return Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        if not settings.is_sqlite:  # one shared database: start each test empty
            async with app.state.engine.begin() as conn:
                await conn.execute(
                    sa.text("TRUNCATE workflows, sessions, operations RESTART IDENTITY CASCADE")
                )
        yield app


@pytest.fixture
def engine(app: Starlette) -> AsyncEngine:
    engine: AsyncEngine = app.state.engine
    return engine


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def plain_http(settings: Settings, app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the same app without its fast paths (same database): the compiled
    execution path off, sessionStats summing sessions (no rollups), and strawberry's own
    request pipeline."""
    plain = create_app(
        settings.model_copy(update={"compiled_execution": False, "stats_rollups": False})
    )
    plain.state.schema.lean = False
    async with plain.router.lifespan_context(plain):
        transport = httpx.ASGITransport(app=plain)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@pytest.fixture
def gql(http: httpx.AsyncClient, plain_http: httpx.AsyncClient) -> GraphQLClient:
    """Every query a test sends also runs with the compiled path off: the two answers
    must be the same bytes."""
    return GraphQLClient(http, plain=plain_http)


Configured = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def configured(settings: Settings, app: Starlette) -> Configured:
    """Opens an HTTP client to another app on the same (emptied) database, with some
    settings changed: ``async with configured(max_depth=3) as http: ...``."""

    @asynccontextmanager
    async def open_client(**changes: Any) -> AsyncIterator[httpx.AsyncClient]:
        other = create_app(settings.model_copy(update=changes))
        async with other.router.lifespan_context(other):
            transport = httpx.ASGITransport(app=other)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                yield c

    return open_client


@pytest.fixture
def sql(engine: AsyncEngine) -> Iterator[SqlRecorder]:
    """Records the SQL statements sent to the database while the test runs."""
    recorder = SqlRecorder()

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not is_plan_setting(statement):
            recorder.statements.append(statement)

    sa.event.listen(engine.sync_engine, "before_cursor_execute", record)
    yield recorder
    sa.event.remove(engine.sync_engine, "before_cursor_execute", record)
