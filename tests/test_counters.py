"""Per-session counters and tool usage, kept exact by every write of operations: batches,
retried and concurrent batches, imports and the demo seed; and updatedAt."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from sessiongraph.db.tables import operations
from sessiongraph.importer import import_file
from sessiongraph.seed import seed_demo_data
from tests.helpers import (
    GraphQLClient,
    SqlRecorder,
    cost,
    database_time,
    expected_counters,
    expected_tool_usage,
    insert_operations,
    insert_session,
    operation_row,
)

START = """mutation ($id: String!) { startSession(input: {id: $id}) { id updatedAt } }"""
RECORD = """mutation ($id: String!, $ops: [OperationInput!]!) {
  recordOperations(sessionId: $id, operations: $ops) { recordedOperationIds } }"""
COMPLETE = """mutation ($id: String!) { completeSession(id: $id, status: COMPLETED) {
  updatedAt operationCount } }"""
TOOLS = "toolName calls failures totalDurationSeconds avgDurationSeconds"
COUNTERS = f"""{{ sessions(first: 200) {{ nodes {{
  id operationCount toolCallCount failedOperationCount subagentCount commitCount updatedAt
  toolUsage(first: 100) {{ {TOOLS} }} }} }} }}"""
_CAMEL = {
    "operation_count": "operationCount",
    "tool_call_count": "toolCallCount",
    "failed_operation_count": "failedOperationCount",
    "subagent_count": "subagentCount",
    "commit_count": "commitCount",
}


def op(operation_id: str, kind: str, **fields: Any) -> dict[str, Any]:
    """An OperationInput."""
    return {"operationId": operation_id, "operationType": kind, **fields}


#: Every kind of operation the counters tell apart.
MIXED = [
    op("a1", "tool_execution_started", toolName="Bash"),  # not a tool call
    op("a2", "tool_execution_completed", toolName="Bash", durationSeconds=1.25),
    op("a3", "tool_execution_completed", toolName="Bash", success=False, durationSeconds=0.5),
    op("a4", "tool_execution_failed", toolName="Bash"),
    op("a5", "tool_blocked", toolName="Edit", durationSeconds=0.1),
    op("a6", "tool_execution_completed"),  # a tool call, but of no tool
    op("a7", "subagent_started"),
    op("a8", "git_commit"),
    op("a9", "git_operation"),  # not a commit
    op("a10", "message_response", success=False),
    op("a11", "tool_execution_completed", toolName="Edit", durationSeconds=0.2),
]


async def _stored_operations(engine: AsyncEngine) -> dict[str, list[dict[str, Any]]]:
    columns = ("session_id", "operation_type", "success", "tool_name", "duration_seconds")
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(*(operations.c[c] for c in columns)))).mappings()
        by_session: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_session.setdefault(row["session_id"], []).append(dict(row))
    return by_session


async def assert_counters_match_operations(gql: GraphQLClient, engine: AsyncEngine) -> Any:
    """Every session's counters and tool usage are those of its stored operations."""
    stored = await _stored_operations(engine)
    nodes = (await gql(COUNTERS))["sessions"]["nodes"]
    for node in nodes:
        ops = stored.get(node["id"], [])
        expected = {_CAMEL[name]: value for name, value in expected_counters(ops).items()}
        assert {key: node[key] for key in expected} == expected, node["id"]
        assert node["toolUsage"] == expected_tool_usage(ops)[:100], node["id"]
    return nodes


async def _session(gql: GraphQLClient, session_id: str) -> dict[str, Any]:
    query = f"""query ($id: String!) {{ session(id: $id) {{
      operationCount toolCallCount failedOperationCount subagentCount commitCount updatedAt
      toolUsage {{ {TOOLS} }} }} }}"""
    session: dict[str, Any] = (await gql(query, {"id": session_id}))["session"]
    return session


async def test_a_batch_counts_each_kind_of_operation(gql: GraphQLClient) -> None:
    await gql(START, {"id": "s-1"})

    await gql(RECORD, {"id": "s-1", "ops": MIXED})

    session = await _session(gql, "s-1")
    assert session | {"updatedAt": None} == {
        "operationCount": 11,
        "toolCallCount": 6,
        "failedOperationCount": 2,
        "subagentCount": 1,
        "commitCount": 1,
        "updatedAt": None,
        "toolUsage": [
            {
                "toolName": "Bash",
                "calls": 3,
                "failures": 2,
                "totalDurationSeconds": 1.75,
                "avgDurationSeconds": 0.875,
            },
            {
                "toolName": "Edit",
                "calls": 2,
                "failures": 1,
                "totalDurationSeconds": 0.3,
                "avgDurationSeconds": 0.15,
            },
        ],
    }


async def test_batches_add_up_and_retries_count_once(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    await gql(START, {"id": "s-1"})
    first, second = MIXED[:6], MIXED[6:]

    await gql(RECORD, {"id": "s-1", "ops": first})
    once = await _session(gql, "s-1")
    await gql(RECORD, {"id": "s-1", "ops": first})  # retried as it was
    retried = await _session(gql, "s-1")
    await gql(RECORD, {"id": "s-1", "ops": first[3:] + second})  # overlapping the first

    assert retried == once  # updatedAt included: a retry that stores nothing changes nothing
    assert once["operationCount"] == 6
    nodes = await assert_counters_match_operations(gql, engine)
    assert nodes[0]["operationCount"] == 11


async def test_concurrent_batches_of_one_session_count_each_operation_once(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    await gql(START, {"id": "s-1"})
    many = [
        op(f"c{i}", kind, toolName=f"T{i % 3}", success=i % 4 != 0, durationSeconds=i / 8)
        for i, kind in enumerate(
            ["tool_execution_completed", "tool_execution_failed", "git_commit", "tool_blocked"] * 30
        )
    ]
    batches = [many[:60], many[:60], many[30:90], many[90:], many[90:], many[:60]]

    results = await asyncio.gather(*(gql(RECORD, {"id": "s-1", "ops": b}) for b in batches))

    recorded = [i for r in results for i in r["recordOperations"]["recordedOperationIds"]]
    assert sorted(recorded) == sorted(o["operationId"] for o in many)  # each stored once
    nodes = await assert_counters_match_operations(gql, engine)
    assert nodes[0]["operationCount"] == 120
    assert nodes[0]["commitCount"] == 30


async def test_a_refused_batch_counts_nothing(gql: GraphQLClient, engine: AsyncEngine) -> None:
    await gql(START, {"id": "s-1"})
    await gql(START, {"id": "s-2"})
    await gql(RECORD, {"id": "s-2", "ops": [op("taken", "git_commit")]})
    before = await _session(gql, "s-1")

    await gql.error(
        RECORD,
        {"id": "s-1", "ops": [op("new", "git_commit"), op("taken", "git_commit")]},
        code="BAD_USER_INPUT",
    )

    assert await _session(gql, "s-1") == before
    await assert_counters_match_operations(gql, engine)


async def test_a_tool_name_too_long_to_key_tool_usage_is_refused(gql: GraphQLClient) -> None:
    await gql(START, {"id": "s-1"})
    ops = [
        op("ok", "tool_blocked", toolName="x" * 512),
        op("long", "tool_blocked", toolName="x" * 513),
    ]

    error = await gql.error(RECORD, {"id": "s-1", "ops": ops}, code="BAD_USER_INPUT")

    assert error["extensions"]["field"] == "operations[1].toolName"
    assert (await _session(gql, "s-1"))["operationCount"] == 0


# -- updatedAt --------------------------------------------------------------------------


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_every_change_moves_updated_at_by_the_database_clock(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    before = await database_time(engine)
    started = _time((await gql(START, {"id": "s-1"}))["startSession"]["updatedAt"])
    await gql(RECORD, {"id": "s-1", "ops": MIXED[:2]})
    recorded = _time((await _session(gql, "s-1"))["updatedAt"])
    await gql(RECORD, {"id": "s-1", "ops": MIXED[:2]})  # nothing new
    retried = _time((await _session(gql, "s-1"))["updatedAt"])
    completed = _time((await gql(COMPLETE, {"id": "s-1"}))["completeSession"]["updatedAt"])
    await gql(COMPLETE, {"id": "s-1"})  # the same completion again: no change
    completed_again = _time((await _session(gql, "s-1"))["updatedAt"])
    after = await database_time(engine)

    assert before <= started <= recorded <= completed <= after
    assert retried == recorded
    assert completed_again == completed
    assert started.tzinfo is not None


async def test_a_session_written_directly_is_stamped_by_the_database(
    engine: AsyncEngine, gql: GraphQLClient
) -> None:
    before = await database_time(engine)
    await insert_session(engine, id="s-1")

    stamped = _time((await _session(gql, "s-1"))["updatedAt"])

    assert before <= stamped <= await database_time(engine)


# -- import and seed --------------------------------------------------------------------


def _rest_session(session_id: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": session_id,
        "status": "completed",
        "started_at": "2026-04-18T08:00:00Z",
        "operations": [
            {
                "operation_id": o["operationId"],
                "operation_type": o["operationType"],
                "tool_name": o.get("toolName"),
                "success": o.get("success", True),
                "duration_seconds": o.get("durationSeconds"),
            }
            for o in ops
        ],
    }


async def test_an_import_counts_and_an_unchanged_reimport_changes_nothing(
    gql: GraphQLClient, engine: AsyncEngine, tmp_path: Path
) -> None:
    path = tmp_path / "sessions.json"
    records = [_rest_session("s-1", MIXED), _rest_session("s-2", MIXED[:0])]
    records[1]["operations"] = [
        dict(o, operation_id="b-" + o["operation_id"]) for o in records[0]["operations"][:4]
    ]
    path.write_text(json.dumps({"sessions": records}))

    await import_file(engine, path)
    imported = await assert_counters_match_operations(gql, engine)
    await import_file(engine, path)
    reimported = await assert_counters_match_operations(gql, engine)

    assert sorted(n["operationCount"] for n in imported) == [4, 11]
    assert reimported == imported  # updatedAt included


async def test_a_reimport_that_changes_operations_counts_them_again(
    gql: GraphQLClient, engine: AsyncEngine, tmp_path: Path
) -> None:
    path = tmp_path / "sessions.json"
    record = _rest_session("s-1", MIXED)
    path.write_text(json.dumps(record))
    await import_file(engine, path)
    first = await _session(gql, "s-1")
    # the same operations, retyped, failed, renamed, and one more
    for operation in record["operations"]:
        if operation["operation_type"] == "tool_execution_completed":
            operation.update(operation_type="tool_blocked", tool_name="Grep", success=False)
    record["operations"].append({"operation_id": "a12", "operation_type": "subagent_started"})
    path.write_text(json.dumps(record))

    await import_file(engine, path)

    [node] = await assert_counters_match_operations(gql, engine)
    assert node["operationCount"] == 12
    assert node["subagentCount"] == 2
    assert node["toolUsage"][0]["toolName"] == "Grep"
    assert _time(node["updatedAt"]) > _time(first["updatedAt"])


async def test_an_import_that_changes_the_session_alone_stamps_it(
    gql: GraphQLClient, engine: AsyncEngine, tmp_path: Path
) -> None:
    path = tmp_path / "sessions.json"
    record = _rest_session("s-1", MIXED[:3])
    path.write_text(json.dumps(record))
    await import_file(engine, path)
    first = await _session(gql, "s-1")

    path.write_text(json.dumps(record | {"error_message": "late news"}))
    await import_file(engine, path)

    again = await _session(gql, "s-1")
    assert _time(again["updatedAt"]) > _time(first["updatedAt"])
    assert again | {"updatedAt": None} == first | {"updatedAt": None}


async def test_seeded_sessions_are_counted(gql: GraphQLClient, engine: AsyncEngine) -> None:
    await seed_demo_data(engine, sessions=40)

    nodes = await assert_counters_match_operations(gql, engine)

    assert len(nodes) == 40
    assert sum(n["toolCallCount"] for n in nodes) > 0
    assert any(n["toolUsage"] for n in nodes)


# -- toolUsage ----------------------------------------------------------------------------


async def test_tool_usage_lists_most_calls_first_then_by_name(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    session = await insert_session(engine, id="s-1")
    calls = {"b": 2, "a": 2, "B": 2, "é": 2, "zz": 3, "c": 1}  # names compare byte-wise
    rows = [
        operation_row(session["id"], operation_type="tool_execution_completed", tool_name=name)
        for name, n in calls.items()
        for _ in range(n)
    ]
    await insert_operations(engine, *rows)
    query = """query ($first: Int) { session(id: "s-1") {
      toolUsage(first: $first) { toolName calls } } }"""

    every = (await gql(query, {"first": 100}))["session"]["toolUsage"]
    first_two = (await gql(query, {"first": 2}))["session"]["toolUsage"]
    default = (await gql(query, {"first": None}))["session"]["toolUsage"]

    assert [(t["toolName"], t["calls"]) for t in every] == [
        ("zz", 3),
        ("B", 2),
        ("a", 2),
        ("b", 2),
        ("é", 2),
        ("c", 1),
    ]
    assert first_two == every[:2]
    assert default == every  # 20 by default


@pytest.mark.parametrize("first", [0, -1, 101])
async def test_tool_usage_first_out_of_range_is_refused(
    gql: GraphQLClient, engine: AsyncEngine, first: int
) -> None:
    await insert_session(engine, id="s-1")

    error = await gql.error(
        'query ($first: Int) { session(id: "s-1") { toolUsage(first: $first) { calls } } }',
        {"first": first},
        code="BAD_USER_INPUT",
    )

    assert error["path"] == ["session", "toolUsage"]
    assert "between 1 and 100" in error["message"]


async def test_tool_usage_of_a_page_is_one_statement(
    gql: GraphQLClient, engine: AsyncEngine, sql: SqlRecorder
) -> None:
    for n in range(30):
        session = await insert_session(engine, id=f"s-{n:02}")
        tools = [f"T{i % (n % 4 + 1)}" for i in range(n)]
        rows = [
            operation_row(session["id"], operation_type="tool_blocked", tool_name=t) for t in tools
        ]
        if rows:
            await insert_operations(engine, *rows)
    query = """{ sessions(first: 30) { nodes { id
      toolUsage(first: 2) { toolName calls }
      more: toolUsage { toolName } } } }"""

    sql.clear()
    data = await gql(query)

    assert len(sql.statements) == 3, sql.report()  # the page, and each toolUsage shape
    nodes = {n["id"]: n for n in data["sessions"]["nodes"]}
    assert nodes["s-00"]["toolUsage"] == []
    assert [t["calls"] for t in nodes["s-29"]["toolUsage"]] == [15, 14]
    assert len(nodes["s-27"]["more"]) == 4


async def test_tool_usage_costs_first_per_session(http: Any) -> None:
    response = await http.post(
        "/graphql",
        json={"query": "{ sessions(first: 10) { nodes { toolUsage(first: 7) { calls } } } }"},
    )

    assert response.json()["extensions"] == cost(10 + 10 * 7)


async def test_an_import_skips_an_operation_whose_tool_name_is_too_long(
    gql: GraphQLClient, engine: AsyncEngine, tmp_path: Path
) -> None:
    path = tmp_path / "sessions.json"
    record = _rest_session("s-1", MIXED[:3])
    record["operations"][1]["tool_name"] = "x" * 513
    path.write_text(json.dumps(record))

    report = await import_file(engine, path)

    assert report.skipped == [
        ("record 1", "session s-1, operation #1: `tool_name` must be at most 512 characters")
    ]
    [node] = await assert_counters_match_operations(gql, engine)
    assert node["operationCount"] == 2
