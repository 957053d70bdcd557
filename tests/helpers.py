"""Test helpers: a GraphQL client over HTTP, row factories and a SQL recorder."""

from __future__ import annotations

import itertools
import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse
from sqlalchemy.ext.asyncio import AsyncEngine

from sessiongraph.db import counters
from sessiongraph.db.columns import database_clock
from sessiongraph.db.tables import operations, sessions, workflows

T0 = datetime(2026, 4, 18, 8, 0, tzinfo=UTC)


class GraphQLClient:
    """POSTs a query to /graphql; fails on errors unless the test expects them.

    Given a ``plain`` client (the same app without its fast paths: plain graphql-core
    execution, strawberry's own request pipeline), every query (not mutations: they
    write) is sent there too, and the two responses must be byte for byte the same.
    """

    def __init__(self, http: httpx.AsyncClient, plain: httpx.AsyncClient | None = None) -> None:
        self.http = http
        self.plain = plain

    async def raw(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        request = {"query": query, "variables": variables}
        response = await self.http.post("/graphql", json=request)
        assert response.status_code == 200, response.text
        if self.plain is not None and not _writes(query):
            plain = await self.plain.post("/graphql", json=request)
            assert plain.content == response.content, (
                f"the fast and the plain paths differ\n{response.text}\n{plain.text}"
            )
        body: dict[str, Any] = response.json()
        return body

    async def __call__(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        body = await self.raw(query, variables)
        assert "errors" not in body, body["errors"]
        return body["data"]

    async def error(
        self, query: str, variables: dict[str, Any] | None = None, *, code: str
    ) -> dict[str, Any]:
        """The single error the query must produce, checked to carry ``code``."""
        body = await self.raw(query, variables)
        errors = body.get("errors")
        assert errors, body
        assert len(errors) == 1, body
        assert errors[0]["extensions"]["code"] == code, errors[0]
        error: dict[str, Any] = errors[0]
        return error


def _writes(query: str) -> bool:
    try:
        document = parse(query)
    except GraphQLError:
        return False
    return any(
        isinstance(d, OperationDefinitionNode) and d.operation is OperationType.MUTATION
        for d in document.definitions
    )


def is_plan_setting(statement: str) -> bool:
    """The SET and RESET around a read planned for its values (``queries._planned``): a
    setting of the connection, not a statement of the request (test_postgres checks
    them)."""
    return statement.startswith(("SET plan_cache_mode", "RESET plan_cache_mode"))


@dataclass
class SqlRecorder:
    statements: list[str] = field(default_factory=list)

    def clear(self) -> None:
        self.statements.clear()

    def report(self) -> str:
        return "\n\n".join(f"[{i}] {s}" for i, s in enumerate(self.statements, 1))


_counter = itertools.count()


def new_id() -> str:
    """A fresh random-looking UUID, repeatable from run to run."""
    return str(uuid.UUID(int=random.Random(next(_counter)).getrandbits(128), version=4))


def session_row(**overrides: Any) -> dict[str, Any]:
    """A complete sessions row with plain defaults; ``overrides`` wins."""
    row: dict[str, Any] = {
        "id": new_id(),
        "workflow_id": None,
        "execution_id": None,
        "phase_id": None,
        "milestone_id": None,
        "status": "completed",
        "agent_provider": "claude",
        "agent_model": "claude-sonnet-4-6",
        "repos": [],
        "workspace_path": None,
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_creation_tokens": 0,
        "cache_read_tokens": 0,
        "total_tokens": 0,
        "total_cost_usd": Decimal(0),
        "cost_by_model": {},
        "started_at": T0,
        "completed_at": None,
        "duration_seconds": None,
        "error_message": None,
        "metadata": {},
    }
    row.update(overrides)
    return row


def operation_row(session_id: str, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "operation_id": new_id(),
        "session_id": session_id,
        "operation_type": "tool_execution_started",
        "timestamp": T0,
        "duration_seconds": None,
        "success": True,
        "input_tokens": None,
        "output_tokens": None,
        "total_tokens": None,
        "tool_name": None,
        "tool_use_id": None,
        "tool_input": None,
        "tool_output": None,
        "message_role": None,
        "message_content": None,
        "thinking_content": None,
        "git": None,
    }
    row.update(overrides)
    return row


async def insert_sessions(engine: AsyncEngine, *rows: dict[str, Any]) -> list[dict[str, Any]]:
    async with engine.begin() as conn:
        await conn.execute(sessions.insert(), list(rows))
    return list(rows)


async def insert_session(engine: AsyncEngine, **overrides: Any) -> dict[str, Any]:
    return (await insert_sessions(engine, session_row(**overrides)))[0]


async def insert_operations(engine: AsyncEngine, *rows: dict[str, Any]) -> list[dict[str, Any]]:
    """Stored as the importer stores operations: their sessions' counters counted again."""
    async with engine.begin() as conn:
        await conn.execute(operations.insert(), list(rows))
        await counters.recount(conn, {row["session_id"] for row in rows})
    return list(rows)


async def insert_timeline(
    engine: AsyncEngine, session_id: str, count: int, **overrides: Any
) -> list[dict[str, Any]]:
    """``count`` operations one second apart from T0."""
    rows = [
        operation_row(session_id, timestamp=T0 + timedelta(seconds=i), **overrides)
        for i in range(count)
    ]
    return await insert_operations(engine, *rows) if rows else []


async def insert_workflow(engine: AsyncEngine, id: str, name: str | None) -> None:
    async with engine.begin() as conn:
        await conn.execute(workflows.insert(), [{"id": id, "name": name}])


def destroy_database_files(folder: Path) -> None:
    """Overwrite the test database's files, as a failing disk or another program would."""
    for path in folder.glob("test.db*"):
        path.write_bytes(b"this is not a database" * 512)


def cost(nodes: int, budget: int = 50_000) -> dict[str, Any]:
    """The ``extensions`` of an accepted response that asked for ``nodes`` nodes."""
    return {"cost": {"requestedNodes": nodes, "budget": budget}}


async def database_time(engine: AsyncEngine) -> datetime:
    """The database's clock now, as ``updated_at`` is stamped."""
    async with engine.connect() as conn:
        now: datetime = await conn.scalar(sa.select(database_clock()))
    return now


TOOL_CALLS = {"tool_execution_completed", "tool_execution_failed", "tool_blocked"}


def expected_counters(ops: list[dict[str, Any]]) -> dict[str, int]:
    """A session's counters, as the spec defines them, of its operations' rows."""
    return {
        "operation_count": len(ops),
        "tool_call_count": sum(op["operation_type"] in TOOL_CALLS for op in ops),
        "failed_operation_count": sum(not op["success"] for op in ops),
        "subagent_count": sum(op["operation_type"] == "subagent_started" for op in ops),
        "commit_count": sum(op["operation_type"] == "git_commit" for op in ops),
    }


def expected_tool_usage(ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A session's toolUsage, as the spec defines it, of its operations' rows."""
    by_tool: dict[str, list[dict[str, Any]]] = {}
    for op in ops:
        if op["operation_type"] in TOOL_CALLS and op["tool_name"] is not None:
            by_tool.setdefault(op["tool_name"], []).append(op)
    usage = []
    for name, calls in by_tool.items():
        durations = [op["duration_seconds"] for op in calls if op["duration_seconds"] is not None]
        total = math.fsum(durations)
        usage.append(
            {
                "toolName": name,
                "calls": len(calls),
                "failures": sum(
                    op["operation_type"] != "tool_execution_completed" or not op["success"]
                    for op in calls
                ),
                "totalDurationSeconds": round(total, 6) if durations else None,
                "avgDurationSeconds": round(total / len(durations), 6) if durations else None,
            }
        )
    return sorted(usage, key=lambda tool: (-tool["calls"], tool["toolName"]))


def tool_usage_of(row: Any) -> dict[str, Any]:
    """A stored session_tools row as toolUsage shows it."""
    count, total = row["duration_count"], row["total_duration_seconds"]
    return {
        "toolName": row["tool_name"],
        "calls": row["calls"],
        "failures": row["failures"],
        "totalDurationSeconds": round(total, 6) if count else None,
        "avgDurationSeconds": round(total / count, 6) if count else None,
    }
