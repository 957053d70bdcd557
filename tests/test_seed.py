"""Tests for the deterministic demo-data seeder."""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from sessiongraph.config import Settings
from sessiongraph.db import tables
from sessiongraph.db.engine import create_engine
from sessiongraph.db.migrate import upgrade
from sessiongraph.seed import ANCHOR, README_WORKFLOW_ID, SeedReport, seed_demo_data
from tests.helpers import database_time, expected_counters, expected_tool_usage, tool_usage_of

NewDatabase = Callable[[], Awaitable[AsyncEngine]]

HEX40 = re.compile(r"^[0-9a-f]{40}$")
FINISHED = {"completed", "failed", "cancelled"}


async def _open_database(path: Path) -> AsyncEngine:
    engine = create_engine(Settings(database_url=f"sqlite+aiosqlite:///{path}"))
    await upgrade(engine)
    return engine


@pytest.fixture
async def new_database(tmp_path: Path) -> AsyncIterator[NewDatabase]:
    """Each call gives an engine on a fresh, empty SQLite file; all are disposed after."""
    engines: list[AsyncEngine] = []

    async def make() -> AsyncEngine:
        engine = await _open_database(tmp_path / f"seed{len(engines)}.db")
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.dispose()


async def _raw_dump(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Every stored value as the database holds it, ordered by primary key, but for the
    time of the write (``updated_at``, the database's clock)."""
    dump: dict[str, list[tuple[Any, ...]]] = {}
    async with engine.connect() as conn:
        for table in (tables.workflows, tables.sessions, tables.operations, tables.session_tools):
            names = ", ".join(c.name for c in table.c if c.name != "updated_at")
            order = ", ".join(c.name for c in table.primary_key)
            result = await conn.exec_driver_sql(
                f"SELECT {names} FROM {table.name} ORDER BY {order}"
            )
            dump[table.name] = [tuple(row) for row in result]
    return dump


@dataclass(frozen=True)
class Seeded:
    report: SeedReport
    workflows: list[dict[str, Any]]
    sessions: list[dict[str, Any]]
    #: session id -> its operations in recording order.
    operations: dict[str, list[dict[str, Any]]]
    raw_json_nulls: int
    #: session id -> its session_tools rows.
    tools: dict[str, list[dict[str, Any]]]
    #: The database's clock just before and just after seeding.
    written_between: tuple[datetime, datetime]

    def all_operations(self) -> list[dict[str, Any]]:
        return [op for ops in self.operations.values() for op in ops]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """The default 200 sessions, seeded once and read back through the typed tables."""
    engine = await _open_database(tmp_path_factory.mktemp("seeded") / "seed.db")
    try:
        before = await database_time(engine)
        report = await seed_demo_data(engine, sessions=200)
        after = await database_time(engine)
        async with engine.connect() as conn:
            workflows = (await conn.execute(sa.select(tables.workflows))).mappings().all()
            sessions = (
                (await conn.execute(sa.select(tables.sessions).order_by(tables.sessions.c.id)))
                .mappings()
                .all()
            )
            ops = (
                (await conn.execute(sa.select(tables.operations).order_by(tables.operations.c.id)))
                .mappings()
                .all()
            )
            tool_rows = (await conn.execute(sa.select(tables.session_tools))).mappings().all()
            raw_json_nulls = await conn.scalar(
                sa.text("SELECT count(*) FROM operations WHERE git = 'null' OR tool_input = 'null'")
            )
    finally:
        await engine.dispose()
    by_session: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for op in ops:
        by_session[op["session_id"]].append(dict(op))
    tools: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for tool in tool_rows:
        tools[tool["session_id"]].append(dict(tool))
    return Seeded(
        report=report,
        workflows=[dict(w) for w in workflows],
        sessions=[dict(s) for s in sessions],
        operations=dict(by_session),
        raw_json_nulls=raw_json_nulls or 0,
        tools=dict(tools),
        written_between=(before, after),
    )


# -- determinism and the API ----------------------------------------------------------


async def test_same_seed_writes_identical_tables(new_database: NewDatabase) -> None:
    first, second = await new_database(), await new_database()

    report_1 = await seed_demo_data(first, sessions=60, seed=11)
    report_2 = await seed_demo_data(second, sessions=60, seed=11)

    dump_1, dump_2 = await _raw_dump(first), await _raw_dump(second)
    assert report_1 == report_2
    assert dump_1 == dump_2
    assert len(dump_1["workflows"]) == report_1.workflows == 5
    assert len(dump_1["sessions"]) == report_1.sessions == 60
    assert len(dump_1["operations"]) == report_1.operations > 0


async def test_different_seed_writes_different_tables(new_database: NewDatabase) -> None:
    first, second = await new_database(), await new_database()

    await seed_demo_data(first, sessions=60, seed=11)
    await seed_demo_data(second, sessions=60, seed=12)

    dump_1, dump_2 = await _raw_dump(first), await _raw_dump(second)
    for name in ("workflows", "sessions", "operations"):
        assert dump_1[name] != dump_2[name], name


async def test_progress_is_reported_and_ends_at_total(new_database: NewDatabase) -> None:
    engine = await new_database()
    calls: list[tuple[int, int]] = []

    await seed_demo_data(
        engine, sessions=60, progress=lambda done, total: calls.append((done, total))
    )

    assert len(calls) >= 5
    assert calls[-1] == (60, 60)
    assert all(total == 60 for _, total in calls)
    done = [d for d, _ in calls]
    assert done == sorted(set(done))


async def test_zero_sessions_writes_only_workflows(new_database: NewDatabase) -> None:
    engine = await new_database()
    calls: list[tuple[int, int]] = []

    report = await seed_demo_data(engine, sessions=0, progress=lambda d, t: calls.append((d, t)))

    assert report == SeedReport(workflows=5, sessions=0, operations=0)
    assert calls == [(0, 0)]


async def test_negative_session_count_is_refused(new_database: NewDatabase) -> None:
    engine = await new_database()

    with pytest.raises(ValueError, match="sessions"):
        await seed_demo_data(engine, sessions=-1)


# -- sessions -------------------------------------------------------------------------


def test_every_status_appears(seeded: Seeded) -> None:
    statuses = [s["status"] for s in seeded.sessions]

    assert set(statuses) == set(tables.SESSION_STATUSES)
    assert max(set(statuses), key=statuses.count) == "completed"


def test_pending_sessions_never_started(seeded: Seeded) -> None:
    pending = [s for s in seeded.sessions if s["status"] == "pending"]

    assert pending
    for s in pending:
        assert s["started_at"] is None
        assert s["completed_at"] is None
        assert s["duration_seconds"] is None
        assert s["id"] not in seeded.operations
        assert s["total_tokens"] == 0
        assert s["total_cost_usd"] == 0
        assert s["cost_by_model"] == {}


def test_running_sessions_are_started_but_not_finished(seeded: Seeded) -> None:
    running = [s for s in seeded.sessions if s["status"] == "running"]

    assert running
    for s in running:
        assert s["started_at"] is not None
        assert s["completed_at"] is None
        assert s["duration_seconds"] is None


def test_finished_sessions_have_matching_duration(seeded: Seeded) -> None:
    for s in seeded.sessions:
        if s["status"] in FINISHED:
            assert s["started_at"] < s["completed_at"] <= ANCHOR
            expected = (s["completed_at"] - s["started_at"]).total_seconds()
            assert s["duration_seconds"] == expected
            assert (s["error_message"] is not None) == (s["status"] == "failed")


def test_sessions_span_the_thirty_days_before_the_anchor(seeded: Seeded) -> None:
    starts = [s["started_at"] for s in seeded.sessions if s["started_at"] is not None]

    assert (ANCHOR - min(starts)).days >= 25
    assert max(starts) <= ANCHOR


def test_tokens_are_sums_of_message_responses(seeded: Seeded) -> None:
    for s in seeded.sessions:
        responses = [
            op
            for op in seeded.operations.get(s["id"], [])
            if op["operation_type"] == "message_response"
        ]
        assert s["input_tokens"] == sum(op["input_tokens"] for op in responses)
        assert s["output_tokens"] == sum(op["output_tokens"] for op in responses)
        for op in responses:
            assert op["total_tokens"] == op["input_tokens"] + op["output_tokens"]
        assert s["total_tokens"] == (
            s["input_tokens"]
            + s["output_tokens"]
            + s["cache_creation_tokens"]
            + s["cache_read_tokens"]
        )
    assert any(s["cache_read_tokens"] > 0 for s in seeded.sessions)
    assert any(s["cache_creation_tokens"] > 0 for s in seeded.sessions)


def test_cost_by_model_sums_to_total_cost(seeded: Seeded) -> None:
    for s in seeded.sessions:
        assert isinstance(s["total_cost_usd"], Decimal)
        assert all(isinstance(v, str) for v in s["cost_by_model"].values())
        parts = sum((Decimal(v) for v in s["cost_by_model"].values()), Decimal(0))
        assert parts == s["total_cost_usd"]
        assert s["total_cost_usd"] == s["total_cost_usd"].quantize(Decimal("0.000001"))
    model_counts = {len(s["cost_by_model"]) for s in seeded.sessions}
    assert {1, 2} <= model_counts
    assert any(s["total_cost_usd"] > 0 for s in seeded.sessions)


def test_providers_models_and_repos_are_mixed(seeded: Seeded) -> None:
    providers = {s["agent_provider"] for s in seeded.sessions}
    models = {s["agent_model"] for s in seeded.sessions}
    repo_counts = {len(s["repos"]) for s in seeded.sessions}

    assert providers == {"claude", "openai", "mock"}
    assert {"claude-sonnet-4-6", "claude-opus-4-7", "claude-haiku-4-5", "gpt-4o"} <= models
    assert repo_counts == {0, 1, 2, 3}
    for s in seeded.sessions:
        assert all(re.fullmatch(r"[\w-]+/[\w-]+", repo) for repo in s["repos"])
        if s["repos"] and s["workspace_path"] is not None:
            assert s["workspace_path"] == "/workspaces/" + s["repos"][0].split("/")[1]
        assert isinstance(s["metadata"], dict)
        assert s["metadata"]["priority"] in {1, 2, 3}
    assert any(s["execution_id"] is None for s in seeded.sessions)
    assert any(s["milestone_id"] is None for s in seeded.sessions)


def test_workflows_include_one_without_a_row(seeded: Seeded) -> None:
    known = {w["id"] for w in seeded.workflows}
    referenced = {s["workflow_id"] for s in seeded.sessions} - {None}

    assert len(seeded.workflows) == 5
    assert all(w["name"] for w in seeded.workflows)
    assert len(referenced - known) == 1


def test_phase_ids_are_slugs_and_uuids(seeded: Seeded) -> None:
    phases = [s["phase_id"] for s in seeded.sessions if s["phase_id"] is not None]

    assert any(_is_uuid(p) for p in phases)
    assert {"detect", "research_phase", "fix-bug"} & set(phases)


def test_ids_are_uuid4(seeded: Seeded) -> None:
    # but the workflow the README's examples name
    workflows = [w["id"] for w in seeded.workflows if w["id"] != README_WORKFLOW_ID]
    ids = [s["id"] for s in seeded.sessions] + workflows
    ids += [op["operation_id"] for op in seeded.all_operations()]

    assert all(uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i for i in ids)
    assert len(set(ids)) == len(ids)


# -- counters -------------------------------------------------------------------------


def test_counters_count_each_session_s_operations(seeded: Seeded) -> None:
    for session in seeded.sessions:
        ops = seeded.operations.get(session["id"], [])
        expected = expected_counters(ops)
        assert {name: session[name] for name in expected} == expected
    assert sum(s["tool_call_count"] for s in seeded.sessions) > 0
    assert sum(s["subagent_count"] for s in seeded.sessions) > 0
    assert sum(s["commit_count"] for s in seeded.sessions) > 0
    assert sum(s["failed_operation_count"] for s in seeded.sessions) > 0


def test_tool_usage_sums_each_session_s_tool_calls(seeded: Seeded) -> None:
    for session in seeded.sessions:
        ops = seeded.operations.get(session["id"], [])
        stored = [tool_usage_of(row) for row in seeded.tools.get(session["id"], [])]
        assert sorted(stored, key=lambda t: t["toolName"]) == sorted(
            expected_tool_usage(ops), key=lambda t: t["toolName"]
        )
    assert seeded.tools


def test_sessions_are_stamped_by_the_database_clock_when_seeded(seeded: Seeded) -> None:
    before, after = seeded.written_between
    assert all(before <= s["updated_at"] <= after for s in seeded.sessions)


# -- operations -----------------------------------------------------------------------


def test_operation_counts_are_skewed_within_bounds(seeded: Seeded) -> None:
    counts = [len(seeded.operations.get(s["id"], [])) for s in seeded.sessions]
    started = [c for c, s in zip(counts, seeded.sessions, strict=True) if s["started_at"]]

    assert all(0 <= c <= 400 for c in counts)
    assert 50 <= sum(started) / len(started) <= 120
    assert sum(c < 40 for c in started) > sum(c > 200 for c in started) > 0


def test_timestamps_increase_within_each_session(seeded: Seeded) -> None:
    sessions = {s["id"]: s for s in seeded.sessions}
    for session_id, ops in seeded.operations.items():
        s = sessions[session_id]
        stamps = [op["timestamp"] for op in ops]
        assert all(a < b for a, b in itertools.pairwise(stamps))
        assert stamps[0] == s["started_at"]
        if s["completed_at"] is not None:
            assert stamps[-1] <= s["completed_at"]
        assert stamps[-1] <= ANCHOR


def test_sessions_open_and_close_with_lifecycle_operations(seeded: Seeded) -> None:
    sessions = {s["id"]: s for s in seeded.sessions}
    for session_id, ops in seeded.operations.items():
        status = sessions[session_id]["status"]
        assert ops[0]["operation_type"] == "session_started"
        last = ops[-1]["operation_type"]
        if status == "failed":
            assert last == "session_error"
        elif status in FINISHED:
            assert last == "session_completed"
        else:
            assert last not in {"session_completed", "session_error"}


def test_every_operation_has_the_required_fields(seeded: Seeded) -> None:
    for op in seeded.all_operations():
        assert op["operation_id"]
        assert op["session_id"]
        assert op["operation_type"]
        assert op["timestamp"] is not None
        assert isinstance(op["success"], bool)


def test_tool_calls_pair_started_with_completed(seeded: Seeded) -> None:
    tools: set[str] = set()
    for ops in seeded.operations.values():
        started = {
            op["tool_use_id"]: op for op in ops if op["operation_type"] == "tool_execution_started"
        }
        for op in ops:
            if op["operation_type"] not in {"tool_execution_completed", "tool_execution_failed"}:
                continue
            start = started[op["tool_use_id"]]
            assert start["tool_name"] == op["tool_name"]
            assert start["timestamp"] < op["timestamp"]
            assert op["duration_seconds"] == pytest.approx(
                (op["timestamp"] - start["timestamp"]).total_seconds()
            )
            assert op["tool_output"] is not None
            assert op["success"] is (op["operation_type"] == "tool_execution_completed")
            tools.add(op["tool_name"])
    assert tools == {"Read", "Edit", "Bash", "Grep", "Write", "WebFetch", "Task"}


def test_tool_inputs_are_objects_except_a_few_legacy_ones(seeded: Seeded) -> None:
    inputs = [op["tool_input"] for op in seeded.all_operations() if op["tool_input"] is not None]
    legacy = [i for i in inputs if not isinstance(i, dict)]

    assert 1 <= len(legacy) <= 4
    assert {type(i) for i in legacy} == {str, list}
    assert any("file_path" in i for i in inputs if isinstance(i, dict))
    assert any("command" in i for i in inputs if isinstance(i, dict))
    assert seeded.raw_json_nulls == 0  # absent JSON is SQL NULL, not the text 'null'


def test_messages_and_thinking_carry_content(seeded: Seeded) -> None:
    ops = seeded.all_operations()
    roles = {op["operation_type"]: op["message_role"] for op in ops if op["message_role"]}

    assert roles == {"message_request": "user", "message_response": "assistant"}
    assert all(op["thinking_content"] for op in ops if op["operation_type"] == "thinking")
    heavy = ("message_content", "thinking_content", "tool_output")
    longest = max(len(op[column] or "") for op in ops for column in heavy)
    assert longest >= 10_000


def test_git_operations_carry_git_info(seeded: Seeded) -> None:
    git_ops = [op for op in seeded.all_operations() if op["git"] is not None]
    by_type = defaultdict(list)
    for op in git_ops:
        by_type[op["operation_type"]].append(op["git"])

    assert {"git_commit", "git_push"} <= set(by_type)
    for info in by_type["git_commit"]:
        assert HEX40.match(info["sha"])
        assert info["operation"] == "commit"
        assert info["branch"]
        assert info["message"]
        assert isinstance(info["files_changed"], int)
    for info in by_type["git_push"]:
        assert info["remote_url"] == f"https://github.com/{info['repo']}.git"
        assert info["commits_count"] >= 1
        assert ".." in info["commit_range"]
    assert any("future_field" in info for info in (op["git"] for op in git_ops))
    assert json.dumps([op["git"] for op in git_ops])  # plain JSON objects throughout


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False
