"""Migrations: the models and the migrations agree, and a schema behind the code is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from sessiongraph.cli import main
from sessiongraph.config import Settings
from sessiongraph.db import migrate
from sessiongraph.db.columns import JSONDocument, Money, UTCDateTime
from sessiongraph.db.engine import create_engine
from sessiongraph.db.tables import session_tools, sessions
from tests.helpers import (
    T0,
    database_time,
    expected_counters,
    expected_tool_usage,
    tool_usage_of,
)

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


def test_the_head_start_up_checks_for_is_the_newest_migration() -> None:
    # A new migration moves migrate.HEAD along with it: a start checks for it alone.
    assert migrate.head_revision() == migrate.HEAD


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


# -- 0002: counters, updated_at and tool usage, backfilled --------------------------------

#: The tables as revision 0001 made them (the code's tables have more columns now).
_SESSIONS_0001 = sa.table(
    "sessions",
    *(sa.column(name) for name in ("id", "status", "input_tokens", "output_tokens")),
    *(sa.column(name) for name in ("cache_creation_tokens", "cache_read_tokens", "total_tokens")),
    sa.column("repos", JSONDocument()),
    sa.column("cost_by_model", JSONDocument()),
    sa.column("metadata", JSONDocument()),
    sa.column("total_cost_usd", Money()),
    sa.column("started_at", UTCDateTime()),
    sa.column("completed_at", UTCDateTime()),
)
_OPERATIONS_0001 = sa.table(
    "operations",
    *(sa.column(name) for name in ("operation_id", "session_id", "operation_type", "success")),
    sa.column("tool_name"),
    sa.column("duration_seconds"),
    sa.column("timestamp", UTCDateTime()),
)
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


def _session_0001(session_id: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": session_id,
        "status": "completed",
        "repos": [],
        "cost_by_model": {},
        "metadata": {},
        "total_cost_usd": Decimal(0),
        "started_at": None,
        "completed_at": None,
    }
    row.update(dict.fromkeys(_SESSIONS_0001.c.keys() - row.keys() - {"id"}, 0) | values)
    return row


def _operations_0001(session_id: str, count: int) -> list[dict[str, Any]]:
    kinds = ["tool_execution_completed", "tool_execution_failed", "tool_blocked", "git_commit"]
    kinds += ["subagent_started", "tool_execution_started", "git_operation", "thinking"]
    return [
        {
            "operation_id": f"{session_id}-{n}",
            "session_id": session_id,
            "operation_type": kinds[n % len(kinds)],
            "success": n % 3 != 0,
            "tool_name": ["Bash", "Edit", None][n % 3],
            "duration_seconds": None if n % 5 == 0 else n / 4,
            "timestamp": None if n % 7 == 0 else T0 + timedelta(minutes=n),
        }
        for n in range(count)
    ]


@pytest.fixture(params=["sqlite", "postgresql"])
def new_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a new, empty database."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("empty_postgres_database")
        return url
    return f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"


@pytest.fixture
async def database_at_0001(new_database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a new database migrated to revision 0001 only."""
    engine = create_engine(Settings(database_url=new_database_url))
    try:
        await migrate.upgrade(engine, "0001")
        yield engine
    finally:
        await engine.dispose()


@pytest.mark.filterwarnings(*EXPRESSION_INDEX_WARNINGS)
async def test_upgrading_a_database_with_data_backfills_the_counters(
    database_at_0001: AsyncEngine,
) -> None:
    engine = database_at_0001
    # Given sessions and operations stored at revision 0001
    sessions_0001 = [
        _session_0001("s-busy", started_at=T0, completed_at=T0 + timedelta(minutes=5)),
        _session_0001("s-quiet", started_at=T0 + timedelta(hours=3)),
        _session_0001("s-undated", status="pending"),
        _session_0001("s-future", started_at=FAR_FUTURE),
        _session_0001("s-lone", completed_at=T0 + timedelta(days=1)),
    ]
    ops = {"s-busy": _operations_0001("s-busy", 60), "s-lone": _operations_0001("s-lone", 3)}
    async with engine.begin() as conn:
        await conn.execute(_SESSIONS_0001.insert(), sessions_0001)
        await conn.execute(_OPERATIONS_0001.insert(), [op for rows in ops.values() for op in rows])
    before = await database_time(engine)

    # When the schema is upgraded to head
    await migrate.upgrade(engine)

    # Then every session's counters and tool usage are those of its operations
    after = await database_time(engine)
    async with engine.connect() as conn:
        stored = {r["id"]: r for r in (await conn.execute(sa.select(sessions))).mappings()}
        tools = (await conn.execute(sa.select(session_tools))).mappings().all()
        assert await conn.run_sync(migrate.compare) == []
    for session_id, row in stored.items():
        expected = expected_counters(ops.get(session_id, []))
        assert {name: row[name] for name in expected} == expected, session_id
        usage = [tool_usage_of(t) for t in tools if t["session_id"] == session_id]
        assert sorted(usage, key=lambda t: t["toolName"]) == sorted(
            expected_tool_usage(ops.get(session_id, [])), key=lambda t: t["toolName"]
        )
    assert stored["s-busy"]["tool_call_count"] == 24
    # ... and updated_at is the latest instant each session's data shows, never the future
    assert stored["s-busy"]["updated_at"] == T0 + timedelta(minutes=59)
    assert stored["s-quiet"]["updated_at"] == T0 + timedelta(hours=3)
    assert stored["s-lone"]["updated_at"] == T0 + timedelta(days=1)
    for undated in ("s-undated", "s-future"):
        assert before <= stored[undated]["updated_at"] <= after

    # ... and the migration goes back and forth
    await migrate.downgrade(engine, "0001")
    await migrate.upgrade(engine)
    async with engine.connect() as conn:
        assert (await conn.scalar(sa.select(sa.func.count()).select_from(session_tools))) == len(
            tools
        )
