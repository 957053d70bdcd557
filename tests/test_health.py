"""GET /healthz: 200 while the database answers, 503 with a clear body when it does not."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from sessiongraph.app import create_app
from sessiongraph.config import Settings
from sessiongraph.db import migrate
from sessiongraph.db.engine import create_engine
from tests.helpers import destroy_database_files
from tests.postgres import URL_VARIABLE, PostgresUnavailable, throwaway_postgres


async def test_healthy_database_answers_200(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


@pytest.mark.sqlite_only
async def test_unreadable_database_answers_503(http: httpx.AsyncClient, tmp_path: Path) -> None:
    # Given a database file that something outside the server has destroyed
    destroy_database_files(tmp_path)

    # When the health check runs
    response = await http.get("/healthz")

    # Then it reports the database as unreachable, without a traceback
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["database"] == "unreachable"
    assert "Traceback" not in response.text


async def test_stopped_postgres_answers_503() -> None:
    # Given an app serving from a PostgreSQL server that then stops
    if os.environ.get(URL_VARIABLE):
        pytest.skip(f"needs a server of its own to stop, and {URL_VARIABLE} names a shared one")
    try:
        server = throwaway_postgres()
        url = server.__enter__()
    except PostgresUnavailable as error:
        if os.environ.get("SESSIONGRAPH_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required: {error}")
        pytest.skip(f"PostgreSQL half skipped: {error}")
    try:
        settings = Settings(database_url=url)
        engine = create_engine(settings)
        await migrate.upgrade(engine)
        await engine.dispose()
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                assert (await http.get("/healthz")).status_code == 200
                server.__exit__(None, None, None)

                # When the health check runs
                response = await http.get("/healthz")

    finally:
        server.__exit__(None, None, None)

    # Then it reports the database as unreachable
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"
