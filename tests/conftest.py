"""Fixtures: a fresh database and app per test, an HTTP client, factories, a SQL recorder."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from sessiongraph.app import create_app
from sessiongraph.config import Settings
from tests.helpers import GraphQLClient, SqlRecorder


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
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
def gql(http: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient(http)


@pytest.fixture
def sql(engine: AsyncEngine) -> Iterator[SqlRecorder]:
    """Records the SQL statements sent to the database while the test runs."""
    recorder = SqlRecorder()

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        recorder.statements.append(statement)

    sa.event.listen(engine.sync_engine, "before_cursor_execute", record)
    yield recorder
    sa.event.remove(engine.sync_engine, "before_cursor_execute", record)
