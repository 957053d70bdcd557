"""Retrying a write is safe: the same input again returns what is stored and changes
nothing, other values are CONFLICT naming the fields (SPEC §10), concurrent retries
included."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from sessiongraph.app import create_app
from sessiongraph.config import Settings
from sessiongraph.db.tables import operations, sessions, workflows
from tests.conftest import Configured
from tests.helpers import GraphQLClient
from tests.live import WSClient, serve

START = """mutation ($input: StartSessionInput!) { startSession(input: $input) {
    id status workflowId workflowName startedAt repos metadata agentModel } }"""

RECORD = """mutation ($id: String!, $ops: [OperationInput!]!) {
  recordOperations(sessionId: $id, operations: $ops) {
    recordedOperationIds alreadyPresentOperationIds } }"""

COMPLETE = """mutation ($id: String!, $status: SessionStatus!, $cost: Decimal,
    $costs: [ModelCostInput!], $input: Int, $total: Int, $at: DateTime, $error: String) {
  completeSession(id: $id, status: $status, totalCostUsd: $cost, costByModel: $costs,
      inputTokens: $input, totalTokens: $total, completedAt: $at, errorMessage: $error) {
    id status completedAt totalTokens totalCostUsd costByModel { model costUsd }
    errorMessage } }"""

COUNT = "query ($id: String!) { session(id: $id) { operationCount status } }"

FULL = {
    "id": "s-1",
    "workflowId": "wf-1",
    "workflowName": "Nightly",
    "agentModel": "claude-sonnet-4-6",
    "repos": ["acme/foo"],
    "startedAt": "2026-04-18T08:00:00.250000Z",
    "metadata": {"ticket": 7, "tags": [True, None, "x"]},
}


async def _dump(engine: AsyncEngine) -> list[list[tuple[Any, ...]]]:
    async with engine.connect() as conn:
        return [
            [tuple(r) for r in (await conn.execute(sa.select(t).order_by(*t.primary_key))).all()]
            for t in (workflows, sessions, operations)
        ]


async def test_starting_again_with_the_same_input_returns_the_stored_session(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    first = (await gql(START, {"input": FULL}))["startSession"]
    bare = (await gql(START, {"input": {"id": "s-2"}}))["startSession"]
    before = await _dump(engine)

    # The same instant in another offset, keys in another order, 7 as 7.0
    again = await gql(
        START,
        {
            "input": FULL
            | {
                "startedAt": "2026-04-18T10:00:00.25+02:00",
                "metadata": {"tags": [True, None, "x"], "ticket": 7.0},
            }
        },
    )
    # The server chose startedAt (now) the first time: omitted, it is not compared;
    # no repos is the same as none, no metadata the same as {}
    bare_again = await gql(START, {"input": {"id": "s-2", "repos": [], "metadata": None}})

    assert again["startSession"] == first
    assert bare_again["startSession"] == bare
    assert await _dump(engine) == before


async def test_starting_again_with_other_values_is_a_conflict(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    await gql(START, {"input": FULL})
    before = await _dump(engine)

    error = await gql.error(
        START,
        {
            "input": FULL
            | {
                "workflowName": "Renamed",  # the workflow's, not compared, and not written
                "agentModel": "other",
                "startedAt": "2026-04-18T08:00:00.251Z",
                "metadata": {"ticket": 7, "tags": [1, None, "x"]},  # true is not 1
                "status": "PENDING",
            }
        },
        code="CONFLICT",
    )

    assert error["path"] == ["startSession"]
    assert error["extensions"]["differences"] == [
        "input.status",
        "input.agentModel",
        "input.startedAt",
        "input.metadata",
    ]
    assert "nothing was changed" in error["message"]
    assert await _dump(engine) == before


async def test_completing_again_with_the_same_figures_returns_it_unchanged(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    await gql(START, {"input": FULL})
    figures = {
        "id": "s-1",
        "status": "FAILED",
        "error": "boom",
        "at": "2026-04-18T09:00:00Z",
        "cost": "0.0438",
        "input": 1200,
        "costs": [
            {"model": "claude-sonnet-4-6", "costUsd": "0.04"},
            {"model": "claude-haiku-4-5", "costUsd": "0.0038"},
        ],
    }
    first = (await gql(COMPLETE, figures))["completeSession"]
    before = await _dump(engine)

    # Decimals in another form, models in another order, the instant in another offset,
    # and the total the counts sum to
    again = await gql(
        COMPLETE,
        figures
        | {
            "at": "2026-04-18T11:00:00+02:00",
            "cost": "0.04380",
            "total": 1200,
            "costs": [
                {"model": "claude-haiku-4-5", "costUsd": "0.00380"},
                {"model": "claude-sonnet-4-6", "costUsd": "0.040"},
            ],
        },
    )
    # completedAt was given the first time; omitted now (the server would choose it) it
    # is not compared, nor are the figures left out
    lean = await gql(COMPLETE, {"id": "s-1", "status": "FAILED", "error": "boom"})

    assert again["completeSession"] == first
    assert lean["completeSession"] == first
    assert await _dump(engine) == before


async def test_completing_again_with_other_figures_is_a_conflict(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    await gql(START, {"input": FULL})
    await gql(COMPLETE, {"id": "s-1", "status": "COMPLETED", "cost": "1.5", "input": 10})
    before = await _dump(engine)

    error = await gql.error(
        COMPLETE,
        {"id": "s-1", "status": "FAILED", "error": "late", "cost": "1.51", "input": 11},
        code="CONFLICT",
    )

    assert error["path"] == ["completeSession"]
    assert error["extensions"]["differences"] == [
        "status",
        "errorMessage",
        "inputTokens",
        "totalCostUsd",
        "totalTokens",
    ]
    assert await _dump(engine) == before


async def test_concurrent_retries_agree_on_one_write(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # Eight clients retrying the same startSession at once: one INSERT wins, the others
    # read what it stored, and none fails
    starts = await asyncio.gather(*(gql.raw(START, {"input": FULL}) for _ in range(8)))
    assert [body.get("errors") for body in starts] == [None] * 8
    assert len({str(body["data"]) for body in starts}) == 1

    batch = [{"operationId": f"o{i}", "operationType": "message"} for i in range(20)]
    records = await asyncio.gather(
        *(gql.raw(RECORD, {"id": "s-1", "ops": batch}) for _ in range(8))
    )
    assert [body.get("errors") for body in records] == [None] * 8
    recorded = [
        i for body in records for i in body["data"]["recordOperations"]["recordedOperationIds"]
    ]
    assert sorted(recorded) == sorted(op["operationId"] for op in batch)  # each exactly once

    figures = {"id": "s-1", "status": "COMPLETED", "at": "2026-04-18T09:00:00Z", "cost": "2"}
    other = figures | {"cost": "3"}
    completes = await asyncio.gather(
        *(gql.raw(COMPLETE, figures) for _ in range(7)), gql.raw(COMPLETE, other)
    )
    codes = [[e["extensions"]["code"] for e in body.get("errors", [])] for body in completes]
    if codes[-1] == []:  # the odd one won: every other one conflicts with it
        assert codes[:-1] == [["CONFLICT"]] * 7
    else:
        assert codes == [[]] * 7 + [["CONFLICT"]]
    assert (await gql(COUNT, {"id": "s-1"}))["session"] == {
        "operationCount": 20,
        "status": "COMPLETED",
    }


@asynccontextmanager
async def _writes_held(settings: Settings, engine: AsyncEngine) -> AsyncIterator[None]:
    """Every write waits until the block ends: PostgreSQL's sessions table locked, or
    SQLite's database held by a write transaction of another connection."""
    if settings.is_sqlite:
        path = make_url(settings.database_url).database
        assert path is not None
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("COMMIT")
            holder.close()
        return
    async with engine.connect() as blocker:
        await blocker.execute(sa.text("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE"))
        yield
        await blocker.rollback()


async def test_a_write_stopped_at_the_time_limit_is_told_it_may_have_committed(
    configured: Configured, settings: Settings, engine: AsyncEngine
) -> None:
    # Given a write that waits past the request time limit (0.5 s)
    async with configured(request_timeout_seconds=0.5) as http:
        gql = GraphQLClient(http)
        async with _writes_held(settings, engine):
            error = await gql.error(START, {"input": FULL}, code="UNAVAILABLE")
            if not settings.is_sqlite:  # a query stopped there (SQLite's reads do not wait)
                query = await gql.error('{ session(id: "s-1") { id } }', code="QUERY_TOO_COMPLEX")
                # is still told to ask for less
                assert query["extensions"]["limit"] == "requestTimeout"
        # Then the write goes on once the database lets it, and commits
        for _ in range(100):
            if (await gql('{ session(id: "s-1") { id } }'))["session"] is not None:
                break
            await asyncio.sleep(0.05)
        # And its retry, safe, returns what it stored
        retried = await gql(START, {"input": FULL})

    # The mutation is told its write may have committed and to retry, not "ask for less"
    assert error["extensions"] == {
        "code": "UNAVAILABLE",
        "retryAfterSeconds": 1,
        "limit": "requestTimeout",
        "maximum": 0.5,
        "writeMayHaveCommitted": True,
    }
    assert "may have committed" in error["message"]
    # and, as a field's error, which field it is
    assert error["path"] == ["startSession"]
    assert retried["startSession"]["id"] == "s-1"


async def test_a_write_stopped_at_the_time_limit_over_websocket_is_told_so_too(
    app: Starlette, settings: Settings, engine: AsyncEngine
) -> None:
    limited = create_app(settings.model_copy(update={"request_timeout_seconds": 0.5}))
    async with (
        limited.router.lifespan_context(limited),
        serve(limited) as url,
        WSClient.open(url) as ws,
    ):
        async with _writes_held(settings, engine):
            sub = await ws.subscribe(START, {"input": FULL})
            stopped = await ws.receive()
            done = await ws.receive()
        for _ in range(100):  # the write goes on, and commits
            if await _stored_session(engine):
                break
            await asyncio.sleep(0.05)
        again = await ws.subscribe(START, {"input": FULL})
        retried = await ws.next(again)

    assert stopped["id"] == sub
    [error] = stopped["payload"]["errors"]
    assert error["extensions"]["code"] == "UNAVAILABLE"
    assert error["extensions"]["writeMayHaveCommitted"] is True
    assert error["path"] == ["startSession"]
    assert done == {"id": sub, "type": "complete"}
    assert retried["startSession"]["id"] == "s-1"


async def _stored_session(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        return await conn.scalar(sa.select(sa.func.count()).select_from(sessions)) == 1


@pytest.mark.postgres_only
async def test_a_write_the_database_stopped_at_its_statement_timeout_is_unavailable(
    configured: Configured, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a write that waits on a lock past the statement timeout (0.3 s), well within
    # the request's time limit: the database cancels it, and its transaction rolls back
    async with configured(statement_timeout_ms=300) as http:
        gql = GraphQLClient(http)
        with caplog.at_level(logging.WARNING):
            async with _writes_held(Settings(database_url="postgresql://x"), engine):
                error = await gql.error(START, {"input": FULL}, code="UNAVAILABLE")
        # And, retried once the lock is gone, it succeeds
        retried = await gql(START, {"input": FULL})

    # Then it is an outage to retry (nothing was stored), not INTERNAL
    assert error["extensions"] == {"code": "UNAVAILABLE", "retryAfterSeconds": 1}
    assert error["path"] == ["startSession"]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert retried["startSession"]["id"] == "s-1"
