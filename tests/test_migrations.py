"""Migrations: the models and the migrations agree, and a schema behind the code is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from sessiongraph.cli import main
from sessiongraph.config import Settings
from sessiongraph.db import migrate
from sessiongraph.db.engine import create_engine

# SQLite cannot reflect the expression index, so autogenerate skips comparing it (and says so).
EXPRESSION_INDEX_WARNINGS = [
    "ignore:Skipped unsupported reflection of expression-based index",
    "ignore:autogenerate skipping metadata-specified expression-based index",
]


@pytest.mark.filterwarnings(*EXPRESSION_INDEX_WARNINGS)
async def test_migrated_database_matches_the_models(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        differences = await conn.run_sync(migrate.compare)

    assert differences == []
    assert await migrate.current_revision(engine) == migrate.head_revision()


@pytest.fixture
async def empty_postgres_database(postgres_url: str) -> AsyncIterator[str]:
    """A new, empty database on the test server."""
    admin = create_engine(Settings(database_url=postgres_url))
    name = "sessiongraph_empty"
    async with admin.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        await conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        async with admin.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        await admin.dispose()


def test_serve_refuses_a_postgres_schema_behind_and_db_upgrade_fixes_it(
    empty_postgres_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = empty_postgres_database

    # Given an empty PostgreSQL database, serve refuses and names the command to run
    assert main(["serve", "--database-url", url, "--port", "1"]) == 1
    assert "sessiongraph db upgrade" in capsys.readouterr().err

    assert main(["db", "current", "--database-url", url]) == 1
    assert "none (empty database)" in capsys.readouterr().out

    # When the schema is upgraded
    assert main(["db", "upgrade", "--database-url", url]) == 0
    assert f"to {migrate.head_revision()}" in capsys.readouterr().err

    # Then it is at head, and upgrading again changes nothing
    assert main(["db", "current", "--database-url", url]) == 0
    assert capsys.readouterr().out.strip() == f"{migrate.head_revision()} (head)"
    assert main(["db", "upgrade", "--database-url", url]) == 0
    assert "already at" in capsys.readouterr().err
