"""`sessionsChanged(filter:)`: a session that stops matching, because of any of its values,
is sent once with matchesFilter false, decided in SQL from its state before and after
the write (SPEC 5)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from sessiongraph.db import queries
from sessiongraph.db.queries import Change, SessionCriteria
from sessiongraph.events import Event, EventKind, replaced
from sessiongraph.graphql.filters import session_criteria
from sessiongraph.graphql.session_filter import (
    DateTimeRange,
    DecimalRange,
    FloatRange,
    IntRange,
    MetadataMatch,
    OperationMatch,
    SessionFilter,
    StringMatch,
    TextMatch,
)
from sessiongraph.graphql.types.session import SessionStatus
from tests.helpers import (
    T0,
    GraphQLClient,
    SqlRecorder,
    insert_operations,
    insert_session,
    operation_row,
)
from tests.live import WSClient, serve, until

START = """mutation ($id: String!, $model: String) {
  startSession(input: {id: $id, status: RUNNING, agentModel: $model,
                       startedAt: "2026-04-18T08:00:00Z"}) { id } }"""
RECORD = """mutation ($id: String!, $ops: [OperationInput!]!) {
  recordOperations(sessionId: $id, operations: $ops) { recordedOperationIds } }"""
COMPLETE = """mutation ($id: String!) {
  completeSession(id: $id, status: COMPLETED, inputTokens: 1200, totalCostUsd: "0.0438",
                  completedAt: "2026-04-18T08:02:14Z") { id } }"""
CHANGED = """subscription ($filter: SessionFilter, $statuses: [SessionStatus!]) {
  sessionsChanged(filter: $filter, statuses: $statuses) { kind matchesFilter session { id } } }"""


@pytest.fixture
async def url(app: Starlette) -> AsyncIterator[str]:
    async with serve(app) as url:
        yield url


async def changes(
    app: Starlette,
    url: str,
    gql: GraphQLClient,
    writes: list[tuple[str, dict[str, Any]]],
    **variables: Any,
) -> list[tuple[str, bool]]:
    """The (kind, matchesFilter) a sessionsChanged subscription with ``variables`` is sent
    while ``writes`` run one by one, each waited for before the next."""
    got: list[tuple[str, bool]] = []
    async with WSClient.open(url) as client:
        sub = await client.subscribe(CHANGED, variables)
        await until(lambda: app.state.events.subscriber_count >= 1)
        for mutation, mutation_variables in writes:
            await gql(mutation, mutation_variables)
            try:
                while True:  # whatever this write caused, before the next one
                    data = await client.next(sub, within=0.5)
                    change = data["sessionsChanged"]
                    got.append((change["kind"], change["matchesFilter"]))
            except TimeoutError:
                pass
    return got


def ops(*tools: str) -> list[dict[str, Any]]:
    return [
        {
            "operationId": f"op-{tool}-{n}",
            "operationType": "tool_execution_started",
            "toolName": tool,
        }
        for n, tool in enumerate(tools)
    ]


async def test_a_session_leaving_by_its_cost_is_sent_once_as_not_matching(
    app: Starlette, url: str, gql: GraphQLClient
) -> None:
    writes = [
        (START, {"id": "s-a"}),
        (RECORD, {"id": "s-a", "ops": ops("Bash")}),
        (COMPLETE, {"id": "s-a"}),
    ]

    got = await changes(app, url, gql, writes, filter={"totalCostUsd": {"lt": "0.01"}})

    assert got == [("STARTED", True), ("OPERATIONS_RECORDED", True), ("COMPLETED", False)]


async def test_a_session_leaving_by_an_operation_is_sent_once_as_not_matching(
    app: Starlette, url: str, gql: GraphQLClient
) -> None:
    writes = [
        (START, {"id": "s-a"}),
        (RECORD, {"id": "s-a", "ops": ops("Bash")}),
        (RECORD, {"id": "s-a", "ops": ops("Read", "rm")}),
        (RECORD, {"id": "s-a", "ops": ops("Edit", "Bash", "Grep")}),
        (COMPLETE, {"id": "s-a"}),
    ]
    never_rm = {"not": {"hasOperation": {"toolName": {"eq": "rm"}}}}

    got = await changes(app, url, gql, writes, filter=never_rm)

    assert got == [
        ("STARTED", True),
        ("OPERATIONS_RECORDED", True),
        ("OPERATIONS_RECORDED", False),
    ]


async def test_a_session_entering_by_an_operation_is_sent_from_then_on(
    app: Starlette, url: str, gql: GraphQLClient
) -> None:
    writes = [
        (START, {"id": "s-a"}),
        (RECORD, {"id": "s-a", "ops": ops("Read")}),
        (RECORD, {"id": "s-a", "ops": ops("Bash")}),
        (RECORD, {"id": "s-a", "ops": ops("Edit")}),
        (COMPLETE, {"id": "s-a"}),
    ]

    got = await changes(
        app, url, gql, writes, filter={"hasOperation": {"toolName": {"eq": "Bash"}}}
    )

    assert got == [
        ("OPERATIONS_RECORDED", True),
        ("OPERATIONS_RECORDED", True),
        ("COMPLETED", True),
    ]


@pytest.mark.parametrize(
    "filter",
    [
        {"not": {"completedAt": {"lte": "2100-01-01T00:00:00Z"}}},  # completedAt was null
        {"not": {"durationSeconds": {"gte": 0}}},  # durationSeconds was null
        {"inputTokens": {"lt": 100}},  # inputTokens was 0
        {"totalTokens": {"lte": 0}},
        {"cacheHitRatio": {"lt": 2}, "not": {"cacheHitRatio": {"lt": 2}}},  # never
    ],
    ids=["completed-at", "duration", "input-tokens", "total-tokens", "never"],
)
async def test_completion_decides_from_the_values_it_replaced(
    app: Starlette, url: str, gql: GraphQLClient, filter: dict[str, Any]
) -> None:
    writes = [(START, {"id": "s-a"}), (COMPLETE, {"id": "s-a"})]

    got = await changes(app, url, gql, writes, filter=filter)

    never = "cacheHitRatio" in filter
    assert got == ([] if never else [("STARTED", True), ("COMPLETED", False)])


async def test_the_flat_arguments_and_the_filter_decide_together(
    app: Starlette, url: str, gql: GraphQLClient
) -> None:
    writes = [
        (START, {"id": "s-claude", "model": "claude-sonnet-4-6"}),
        (START, {"id": "s-gpt", "model": "gpt-4o"}),
        (COMPLETE, {"id": "s-gpt"}),
        (COMPLETE, {"id": "s-claude"}),
    ]

    got = await changes(
        app,
        url,
        gql,
        writes,
        statuses=["RUNNING"],
        filter={"agentModel": {"prefix": "claude"}},
    )

    assert got == [("STARTED", True), ("COMPLETED", False)]


async def test_a_bad_filter_ends_the_subscription_with_its_path(url: str) -> None:
    async with WSClient.open(url) as client:
        sub = await client.subscribe(CHANGED, {"filter": {"errorMessage": {"contains": ""}}})
        reply = await client.receive()

        assert reply["id"] == sub
        [error] = reply["payload"]["errors"]
        assert error["extensions"] == {
            "code": "BAD_USER_INPUT",
            "argumentName": "filter",
            "field": "filter.errorMessage.contains",
        }


# -- the statement, for changes the mailbox coalesced -----------------------------------------


def _criteria(**filter: Any) -> SessionCriteria:
    return session_criteria(
        workflow_id=None,
        status=None,
        statuses=None,
        started_after=None,
        started_before=None,
        filter=SessionFilter(**filter),
    )


async def _matched(
    engine: AsyncEngine, criteria: SessionCriteria, change: Change
) -> tuple[bool, bool]:
    rows = await queries.fetch_changed_sessions(
        engine=engine, changes=[change], where=queries.whole_filter(criteria)
    )
    row = rows[change.session_id]
    return bool(row["matches"]), bool(row["matched"])


async def test_before_and_after_are_one_statement_for_any_number_of_sessions(
    engine: AsyncEngine, sql: SqlRecorder
) -> None:
    for n in range(30):
        await insert_session(engine, id=f"s-{n}", metadata={"n": n})
    criteria = _criteria(metadata=[MetadataMatch(key="n", equals=3)])

    for count in (1, 30):
        sql.clear()
        rows = await queries.fetch_changed_sessions(
            engine=engine,
            changes=[Change(f"s-{n}", before={"status": "running"}) for n in range(count)],
            where=queries.whole_filter(criteria),
        )
        assert len(rows) == count
        assert len(sql.statements) == 1, sql.report()
    assert {id for id, row in rows.items() if row["matches"]} == {"s-3"}


async def test_a_change_that_started_the_session_matched_nothing_before(
    engine: AsyncEngine,
) -> None:
    await insert_session(engine, id="s-new", status="running")

    found = await _matched(engine, _criteria(), Change("s-new", new=True))

    assert found == (True, False)


async def test_operations_recorded_since_the_first_row_were_not_there_before(
    engine: AsyncEngine,
) -> None:
    await insert_session(engine, id="s-ops")
    await insert_operations(
        engine,
        operation_row("s-ops", tool_name="Read"),
        operation_row("s-ops", tool_name="rm"),
        operation_row("s-ops", tool_name="Bash"),
    )
    has_rm = _criteria(has_operation=OperationMatch(tool_name=StringMatch(eq="rm")))

    # rows 1..3: rm is row 2
    assert await _matched(engine, has_rm, Change("s-ops", first_row=2)) == (True, False)
    assert await _matched(engine, has_rm, Change("s-ops", first_row=3)) == (True, True)
    assert await _matched(engine, has_rm, Change("s-ops")) == (True, True)


async def test_replaced_values_of_every_type_are_read_as_they_were(
    engine: AsyncEngine,
) -> None:
    # given a completed session, and what its completion replaced
    row = await insert_session(
        engine,
        id="s-done",
        status="completed",
        input_tokens=1200,
        total_cost_usd=Decimal("0.0438"),
        completed_at=T0 + timedelta(minutes=2),
        duration_seconds=120.0,
        error_message="late",
    )
    was = {
        **row,
        "status": "running",
        "input_tokens": 0,
        "total_cost_usd": Decimal("0.1"),
        "completed_at": T0 + timedelta(minutes=1),
        "duration_seconds": None,
        "error_message": None,
    }
    before = dict(replaced(was, row))
    change = Change("s-done", before=before)

    cases = [
        (_criteria(status=[SessionStatus.RUNNING]), (False, True)),
        (_criteria(input_tokens=IntRange(lt=1)), (False, True)),
        (_criteria(total_cost_usd=DecimalRange(gte=Decimal("0.1"))), (False, True)),
        (_criteria(total_cost_usd=DecimalRange(gt=Decimal("0.1"))), (False, False)),
        (_criteria(completed_at=DateTimeRange(lte=T0 + timedelta(minutes=1))), (False, True)),
        (_criteria(duration_seconds=FloatRange(gte=0.0)), (True, False)),
        (_criteria(has_error=False), (False, True)),
        (_criteria(error_message=TextMatch(contains="LATE")), (True, False)),
        (_criteria(agent_model=StringMatch(eq="claude-sonnet-4-6")), (True, True)),
    ]

    found = [await _matched(engine, criteria, change) for criteria, _ in cases]

    assert found == [expected for _, expected in cases]


# -- events -----------------------------------------------------------------------------------


def test_coalesced_events_keep_the_state_before_the_first() -> None:
    started = Event(EventKind.STARTED, "s")
    first = Event(EventKind.RECORDED, "s", (4, 6))
    second = Event(EventKind.RECORDED, "s", (9, 12))
    completed = Event(EventKind.COMPLETED, "s", before=(("status", "running"), ("x", 1)))
    again = Event(EventKind.COMPLETED, "s", before=(("status", "completed"), ("y", 2)))

    recorded = first.followed_by(second).followed_by(completed)
    assert recorded == Event(EventKind.COMPLETED, "s", (4, 12), (("status", "running"), ("x", 1)))
    assert not recorded.new
    assert started.followed_by(first).new
    assert started.followed_by(first).kind is EventKind.RECORDED
    assert completed.followed_by(first).kind is EventKind.COMPLETED
    assert dict(completed.followed_by(again).before) == {"status": "running", "x": 1, "y": 2}


def test_an_event_carries_what_it_replaced_through_notify() -> None:
    row = {
        "status": "running",
        "completed_at": None,
        "total_cost_usd": Decimal("0.5"),
        "error_message": "x" * 2000,
        "cost_by_model": {},
        "input_tokens": 7,
    }
    values = {
        "status": "completed",
        "completed_at": T0,
        "total_cost_usd": Decimal("1"),
        "error_message": None,
        "cost_by_model": {"m": "1"},
        "input_tokens": 7,
    }

    event = Event(EventKind.COMPLETED, "s", before=replaced(row, values))

    assert dict(event.before) == {
        "status": "running",
        "completed_at": None,
        "total_cost_usd": "0.5",
    }
    assert Event.decode(event.encode()) == event
    assert Event.decode(Event(EventKind.STARTED, "s").encode()) == Event(EventKind.STARTED, "s")
    with pytest.raises(ValueError, match="not an event"):
        Event.decode('{"kind":"completed","session":"s","rows":null,"before":{"a":[1]}}')


async def test_a_session_leaving_by_its_counters_is_sent_once_as_not_matching(
    app: Starlette, url: str, gql: GraphQLClient
) -> None:
    writes = [
        (START, {"id": "s-a"}),
        (RECORD, {"id": "s-a", "ops": ops("Read")}),
        (RECORD, {"id": "s-a", "ops": ops("Edit", "Bash")}),
        (RECORD, {"id": "s-a", "ops": ops("Grep")}),
    ]

    got = await changes(app, url, gql, writes, filter={"operationCount": {"lt": 2}})

    assert got == [("STARTED", True), ("OPERATIONS_RECORDED", True), ("OPERATIONS_RECORDED", False)]


async def test_a_session_leaving_by_its_update_time_is_sent_once_as_not_matching(
    app: Starlette, url: str, gql: GraphQLClient
) -> None:
    # given a session last updated before a moment, and a filter on what was updated before it
    await gql(START, {"id": "s-a"})
    await asyncio.sleep(0.05)
    moment = datetime.now(UTC).isoformat()
    await asyncio.sleep(0.05)
    writes = [
        (RECORD, {"id": "s-a", "ops": ops("Read")}),
        (RECORD, {"id": "s-a", "ops": ops("Edit")}),
    ]

    got = await changes(app, url, gql, writes, filter={"updatedAt": {"lt": moment}})

    assert got == [("OPERATIONS_RECORDED", False)]
