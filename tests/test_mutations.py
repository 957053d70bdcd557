"""Writing sessions in: startSession, recordOperations, completeSession."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from sessiongraph.db.tables import operations, sessions, workflows
from tests.helpers import GraphQLClient

START = """mutation ($input: StartSessionInput!) { startSession(input: $input) {
    id status workflowId workflowName startedAt repos metadata operationCount } }"""

RECORD = """mutation ($id: String!, $ops: [OperationInput!]!) {
  recordOperations(sessionId: $id, operations: $ops) {
    recordedOperationIds alreadyPresentOperationIds
    operations { operationId operationType timestamp toolInput git { sha } success } } }"""

COMPLETE = """mutation ($id: String!, $status: SessionStatus!, $cost: Decimal,
    $costs: [ModelCostInput!], $input: Int, $output: Int, $at: DateTime, $error: String) {
  completeSession(id: $id, status: $status, totalCostUsd: $cost, costByModel: $costs,
      inputTokens: $input, outputTokens: $output, completedAt: $at, errorMessage: $error) {
    id status completedAt durationSeconds totalTokens totalCostUsd
    costByModel { model costUsd } errorMessage } }"""


def op(operation_id: str, **fields: Any) -> dict[str, Any]:
    return {"operationId": operation_id, "operationType": "tool_execution_started", **fields}


async def _dump(engine: AsyncEngine) -> list[list[tuple[Any, ...]]]:
    async with engine.connect() as conn:
        return [
            [tuple(r) for r in (await conn.execute(sa.select(t).order_by(*t.primary_key))).all()]
            for t in (workflows, sessions, operations)
        ]


async def _start(gql: GraphQLClient, **fields: Any) -> dict[str, Any]:
    data = await gql(START, {"input": {"startedAt": "2026-04-18T08:00:00Z", **fields}})
    started: dict[str, Any] = data["startSession"]
    return started


async def test_start_session_generates_an_id_and_creates_its_workflow(gql: GraphQLClient) -> None:
    session = await _start(
        gql, workflowId="wf-new", workflowName="Nightly", repos=["acme/foo"], metadata={"k": 1}
    )

    assert len(session["id"]) == 36
    assert session | {"id": None} == {
        "id": None,
        "status": "RUNNING",
        "workflowId": "wf-new",
        "workflowName": "Nightly",
        "startedAt": "2026-04-18T08:00:00+00:00",
        "repos": ["acme/foo"],
        "metadata": {"k": 1},
        "operationCount": 0,
    }


async def test_start_session_with_an_existing_id_changes_nothing(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    await _start(gql, id="s-1")
    before = await _dump(engine)

    error = await gql.error(START, {"input": {"id": "s-1", "agentModel": "x"}}, code="CONFLICT")

    assert error["extensions"]["differences"] == ["input.agentModel"]
    assert await _dump(engine) == before


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"status": "COMPLETED"}, "input.status"),
        ({"id": ""}, "input.id"),
        ({"id": "x" * 129}, "input.id"),
        ({"metadata": [1, 2]}, "input.metadata"),
    ],
)
async def test_start_session_rejects_bad_input_by_field(
    gql: GraphQLClient, fields: dict[str, Any], field: str
) -> None:
    error = await gql.error(START, {"input": fields}, code="BAD_USER_INPUT")

    assert error["extensions"]["field"] == field


async def test_record_operations_stores_a_batch_and_is_idempotent(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    session = await _start(gql, id="s-1")
    batch = [
        op("o1", timestamp="2026-04-18T08:00:01Z", toolInput={"command": "ls"}),
        op("o2", timestamp="2026-04-18T08:00:02Z", toolInput="raw text", success=False),
        op("o3", operationType="git_commit", git={"sha": "abc", "future": 1}),
    ]

    first = (await gql(RECORD, {"id": session["id"], "ops": batch}))["recordOperations"]
    again = (await gql(RECORD, {"id": session["id"], "ops": [*batch, op("o4")]}))[
        "recordOperations"
    ]

    assert first["recordedOperationIds"] == ["o1", "o2", "o3"]
    assert first["alreadyPresentOperationIds"] == []
    assert [o["toolInput"] for o in first["operations"]] == [
        {"command": "ls"},
        {"raw": "raw text"},
        None,
    ]
    assert first["operations"][2]["git"] == {"sha": "abc"}
    assert again["recordedOperationIds"] == ["o4"]
    assert again["alreadyPresentOperationIds"] == ["o1", "o2", "o3"]
    count = await gql('{ session(id: "s-1") { operationCount } }')
    assert count == {"session": {"operationCount": 4}}


@pytest.mark.parametrize(
    ("ops", "field"),
    [
        ([op("ok"), op("ok")], "operations[1].operationId"),
        ([op("ok"), op("")], "operations[1].operationId"),
        ([op("ok"), op("bad", operationType=" ")], "operations[1].operationType"),
        ([op("ok"), op("bad", inputTokens=-1)], "operations[1].inputTokens"),
        ([op("ok"), op("bad", durationSeconds=-0.5)], "operations[1].durationSeconds"),
        ([op("ok"), op("bad", git="not an object")], "operations[1].git"),
        ([], "operations"),
        ([op(f"o{i}") for i in range(1001)], "operations"),
    ],
)
async def test_a_bad_operation_stores_nothing_of_its_batch(
    gql: GraphQLClient, engine: AsyncEngine, ops: list[dict[str, Any]], field: str
) -> None:
    await _start(gql, id="s-1")
    before = await _dump(engine)

    error = await gql.error(RECORD, {"id": "s-1", "ops": ops}, code="BAD_USER_INPUT")

    assert error["extensions"]["field"] == field
    assert await _dump(engine) == before


async def test_operation_id_of_another_session_stores_nothing(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    await _start(gql, id="s-1")
    await _start(gql, id="s-2")
    await gql(RECORD, {"id": "s-1", "ops": [op("shared")]})
    before = await _dump(engine)

    error = await gql.error(
        RECORD, {"id": "s-2", "ops": [op("fresh"), op("shared")]}, code="BAD_USER_INPUT"
    )

    assert error["extensions"]["field"] == "operations[1].operationId"
    assert await _dump(engine) == before


async def test_unknown_session_takes_no_operations(gql: GraphQLClient) -> None:
    error = await gql.error(RECORD, {"id": "nope", "ops": [op("o1")]}, code="BAD_USER_INPUT")

    assert error["extensions"]["field"] == "sessionId"


async def test_complete_session_sets_final_figures(gql: GraphQLClient) -> None:
    await _start(gql, id="s-1")

    data = await gql(
        COMPLETE,
        {
            "id": "s-1",
            "status": "FAILED",
            "at": "2026-04-18T08:02:14Z",
            "input": 1200,
            "output": 300,
            "cost": "0.0438",
            "costs": [
                {"model": "claude-haiku-4-5", "costUsd": "0.0038"},
                {"model": "claude-sonnet-4-6", "costUsd": "0.04"},
            ],
            "error": "boom",
        },
    )

    assert data["completeSession"] == {
        "id": "s-1",
        "status": "FAILED",
        "completedAt": "2026-04-18T08:02:14+00:00",
        "durationSeconds": 134.0,
        "totalTokens": 1500,
        "totalCostUsd": "0.0438",
        "costByModel": [
            {"model": "claude-sonnet-4-6", "costUsd": "0.04"},
            {"model": "claude-haiku-4-5", "costUsd": "0.0038"},
        ],
        "errorMessage": "boom",
    }


async def test_finished_session_refuses_operations_and_a_second_completion(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    await _start(gql, id="s-1")
    await gql(COMPLETE, {"id": "s-1", "status": "COMPLETED", "at": "2026-04-18T09:00:00Z"})
    before = await _dump(engine)

    refused = await gql.error(RECORD, {"id": "s-1", "ops": [op("late")]}, code="BAD_USER_INPUT")
    twice = await gql.error(COMPLETE, {"id": "s-1", "status": "FAILED"}, code="CONFLICT")

    assert "completed" in refused["message"]
    assert twice["extensions"]["differences"] == ["status"]
    assert await _dump(engine) == before


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"status": "RUNNING"}, "status"),
        ({"status": "COMPLETED", "input": -1}, "inputTokens"),
        ({"status": "COMPLETED", "at": "2026-04-18T07:00:00Z"}, "completedAt"),
        (
            {
                "status": "COMPLETED",
                "costs": [{"model": "m", "costUsd": "1"}, {"model": "m", "costUsd": "2"}],
            },
            "costByModel",
        ),
    ],
)
async def test_complete_session_rejects_bad_input_and_changes_nothing(
    gql: GraphQLClient, engine: AsyncEngine, variables: dict[str, Any], field: str
) -> None:
    await _start(gql, id="s-1")
    before = await _dump(engine)

    error = await gql.error(COMPLETE, {"id": "s-1", **variables}, code="BAD_USER_INPUT")

    assert error["extensions"]["field"] == field
    assert await _dump(engine) == before


async def test_concurrent_retries_of_one_batch_store_it_once(gql: GraphQLClient) -> None:
    await _start(gql, id="s-1")
    batch = [op(f"o{i}") for i in range(200)]

    results = await asyncio.gather(*(gql(RECORD, {"id": "s-1", "ops": batch}) for _ in range(4)))

    recorded = sorted(len(r["recordOperations"]["recordedOperationIds"]) for r in results)
    assert recorded == [0, 0, 0, 200]
    count = await gql('{ session(id: "s-1") { operationCount } }')
    assert count == {"session": {"operationCount": 200}}


async def test_concurrent_starts_of_one_id_create_it_once(gql: GraphQLClient) -> None:
    # Two inputs for one id: the first INSERT decides which is stored
    inputs = [{"id": "s-1", "workflowId": "wf-new", "agentModel": m} for m in "aabb"]

    bodies = await asyncio.gather(*(gql.raw(START, {"input": i}) for i in inputs))

    codes = [b["errors"][0]["extensions"]["code"] if "errors" in b else "OK" for b in bodies]
    assert codes in (["OK", "OK", "CONFLICT", "CONFLICT"], ["CONFLICT", "CONFLICT", "OK", "OK"])


async def test_concurrent_completions_apply_once(gql: GraphQLClient) -> None:
    await _start(gql, id="s-1")
    statuses = ["COMPLETED", "FAILED", "CANCELLED"]

    bodies = await asyncio.gather(
        *(gql.raw(COMPLETE, {"id": "s-1", "status": status}) for status in statuses)
    )

    winners = [b["data"]["completeSession"]["status"] for b in bodies if "errors" not in b]
    assert len(winners) == 1
    losers = [b["errors"][0]["extensions"] for b in bodies if "errors" in b]
    assert losers == [{"code": "CONFLICT", "differences": ["status"]}] * 2
    final = await gql('{ session(id: "s-1") { status } }')
    assert final == {"session": {"status": winners[0]}}


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"input": {"agentModel": "a\u0000b"}}, "input.agentModel"),
        ({"input": {"repos": ["ok", "a\u0000"]}}, "input.repos[1]"),
        ({"input": {"metadata": {"k": "a\u0000"}}}, "input.metadata.k"),
        ({"input": {"workflowName": "orphan"}}, "input.workflowName"),
    ],
)
async def test_start_session_refuses_values_a_database_would_not_store(
    gql: GraphQLClient, variables: dict[str, Any], field: str
) -> None:
    error = await gql.error(START, variables, code="BAD_USER_INPUT")

    assert error["extensions"]["field"] == field


@pytest.mark.parametrize(
    ("ops", "field"),
    [
        ([op("bad", toolOutput="a\u0000")], "operations[0].toolOutput"),
        ([op("bad", toolInput={"k": ["x", "a\u0000"]})], "operations[0].toolInput.k[1]"),
        (
            [op("bad", inputTokens=None, totalTokens=None, git={"n": "\u0000"})],
            "operations[0].git.n",
        ),
    ],
)
async def test_record_operations_refuses_values_a_database_would_not_store(
    gql: GraphQLClient, ops: list[dict[str, Any]], field: str
) -> None:
    await _start(gql, id="s-1")

    error = await gql.error(RECORD, {"id": "s-1", "ops": ops}, code="BAD_USER_INPUT")

    assert error["extensions"]["field"] == field


@pytest.mark.parametrize(
    ("cost", "field"),
    [
        ("12345678901", "totalCostUsd"),
        ("1e400", "totalCostUsd"),
        ("0.00000000001", "totalCostUsd"),
        ("-1", "totalCostUsd"),
    ],
)
async def test_complete_session_refuses_costs_out_of_range(
    gql: GraphQLClient, cost: str, field: str
) -> None:
    await _start(gql, id="s-1")

    error = await gql.error(
        COMPLETE, {"id": "s-1", "status": "COMPLETED", "cost": cost}, code="BAD_USER_INPUT"
    )

    assert error["extensions"]["field"] == field


async def test_recording_racing_completion_is_all_or_nothing(gql: GraphQLClient) -> None:
    for round_ in range(10):
        session_id = f"s-{round_}"
        await _start(gql, id=session_id)
        batch = [op(f"{session_id}-{i}") for i in range(50)]

        recorded, completed = await asyncio.gather(
            gql.raw(RECORD, {"id": session_id, "ops": batch}),
            gql.raw(COMPLETE, {"id": session_id, "status": "COMPLETED"}),
        )

        assert "errors" not in completed
        count = await gql(
            "query ($id: String!) { session(id: $id) { operationCount } }", {"id": session_id}
        )
        stored = count["session"]["operationCount"]
        assert stored == (0 if "errors" in recorded else 50)


async def test_refusals_of_the_database_layer_read_as_the_api_words_them(
    gql: GraphQLClient,
) -> None:
    await _start(gql, id="s-1")
    await _start(gql, id="s-2")
    await gql(RECORD, {"id": "s-1", "ops": [op("shared")]})
    await _start(gql, id="done")
    await gql(COMPLETE, {"id": "done", "status": "FAILED", "at": "2026-04-18T09:00:00Z"})
    refusals = [
        (RECORD, {"id": "nope", "ops": [op("o1")]}),
        (RECORD, {"id": "done", "ops": [op("o1")]}),
        (RECORD, {"id": "s-2", "ops": [op("fresh"), op("shared")]}),
        (COMPLETE, {"id": "nope", "status": "COMPLETED"}),
        (COMPLETE, {"id": "s-2", "status": "COMPLETED", "at": "2026-04-18T07:00:00Z"}),
    ]

    errors = [await gql.error(query, v, code="BAD_USER_INPUT") for query, v in refusals]

    assert [(e["message"], e["extensions"]["field"]) for e in errors] == [
        ("No session with id 'nope'", "sessionId"),
        ("Session 'done' is failed: it records no more operations", "sessionId"),
        (
            "Operation id 'shared' is already recorded for another session",
            "operations[1].operationId",
        ),
        ("No session with id 'nope'", "id"),
        ("`completedAt` is before the session started", "completedAt"),
    ]


async def test_complete_session_refuses_a_summed_total_an_int_cannot_carry(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # Given a session whose counts each fit an Int, but not their sum
    await _start(gql, id="s-1")
    before = await _dump(engine)
    most = 2**31 - 1

    # When it completes without a total
    variables = {"id": "s-1", "status": "COMPLETED", "input": most, "output": 1}
    error = await gql.error(COMPLETE, variables, code="BAD_USER_INPUT")

    # Then nothing is stored, and the error names the missing total
    assert error["extensions"]["field"] == "totalTokens"
    assert await _dump(engine) == before
    # and the largest sum an Int carries is stored
    data = await gql(COMPLETE, {**variables, "output": 0})
    assert data["completeSession"]["totalTokens"] == most
