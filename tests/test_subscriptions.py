"""Subscriptions over real WebSocket connections to a real uvicorn server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from websockets.exceptions import ConnectionClosed, InvalidStatus

from sessiongraph.app import create_app
from sessiongraph.config import Settings
from sessiongraph.events import Broker
from sessiongraph.graphql.execution import CompiledExecutionContext
from tests.helpers import GraphQLClient, SqlRecorder
from tests.live import WSClient, serve, until

START = """mutation ($id: String!, $wf: String, $status: SessionStatus! = RUNNING) {
  startSession(input: {id: $id, workflowId: $wf, status: $status,
                       startedAt: "2026-04-18T08:00:00Z"}) { id } }"""
RECORD = """mutation ($id: String!, $ops: [OperationInput!]!) {
  recordOperations(sessionId: $id, operations: $ops) { recordedOperationIds } }"""
COMPLETE = """mutation ($id: String!) {
  completeSession(id: $id, status: COMPLETED, inputTokens: 1200, outputTokens: 300,
                  totalCostUsd: "0.0438", completedAt: "2026-04-18T08:02:14Z") { id } }"""

SESSION_UPDATED = """subscription ($id: String!) { sessionUpdated(id: $id) {
  id status operationCount totalTokens totalCostUsd totalCostDisplay completedAt
  durationDisplay } }"""
OPERATIONS_RECORDED = """subscription ($id: String!) { operationsRecorded(sessionId: $id) {
  sessionId operations { operationId operationType toolOutput } } }"""
SESSIONS_CHANGED = """subscription ($statuses: [SessionStatus!], $wf: String) {
  sessionsChanged(statuses: $statuses, workflowId: $wf) {
    kind matchesFilter session { id status workflowName } } }"""


def ops(*ids: str, **fields: Any) -> list[dict[str, Any]]:
    return [{"operationId": i, "operationType": "tool_execution_started", **fields} for i in ids]


@pytest.fixture
async def url(app: Starlette) -> AsyncIterator[str]:
    async with serve(app) as url:
        yield url


def events_of(app: Starlette) -> Broker:
    broker: Broker = app.state.events
    return broker


async def subscribed(app: Starlette, count: int = 1) -> None:
    """Wait until ``count`` subscriptions are listening, so no event falls before them."""
    await until(lambda: events_of(app).subscriber_count >= count)


async def test_session_updated_follows_a_session_from_start_to_completion(
    app: Starlette, url: str, gql: GraphQLClient
) -> None:
    async with WSClient.open(url) as client:
        sub = await client.subscribe(SESSION_UPDATED, {"id": "s-live"})
        await subscribed(app)

        await gql(START, {"id": "s-live"})
        started = (await client.next(sub))["sessionUpdated"]
        await gql(RECORD, {"id": "s-live", "ops": ops("o-1", "o-2")})
        recorded = (await client.next(sub))["sessionUpdated"]
        await gql(START, {"id": "s-other"})
        await gql(COMPLETE, {"id": "s-live"})
        completed = (await client.next(sub))["sessionUpdated"]
        await client.nothing()

    assert started == {
        "id": "s-live",
        "status": "RUNNING",
        "operationCount": 0,
        "totalTokens": 0,
        "totalCostUsd": "0",
        "totalCostDisplay": "$0.00",
        "completedAt": None,
        "durationDisplay": "—",
    }
    assert recorded == started | {"operationCount": 2}
    assert completed == {
        "id": "s-live",
        "status": "COMPLETED",
        "operationCount": 2,
        "totalTokens": 1500,
        "totalCostUsd": "0.0438",
        "totalCostDisplay": "$0.04",
        "completedAt": "2026-04-18T08:02:14+00:00",
        "durationDisplay": "2m 14s",
    }


async def test_session_updated_starts_with_the_current_state(url: str, gql: GraphQLClient) -> None:
    await gql(START, {"id": "s-now"})
    await gql(RECORD, {"id": "s-now", "ops": ops("o-1")})
    async with WSClient.open(url) as client:
        sub = await client.subscribe(SESSION_UPDATED, {"id": "s-now"})
        first = (await client.next(sub))["sessionUpdated"]
        await gql(COMPLETE, {"id": "s-now"})
        second = (await client.next(sub))["sessionUpdated"]

    assert (first["status"], first["operationCount"]) == ("RUNNING", 1)
    assert (second["status"], second["operationCount"]) == ("COMPLETED", 1)


async def test_operations_recorded_sends_each_new_batch_once(
    app: Starlette, url: str, gql: GraphQLClient
) -> None:
    await gql(START, {"id": "s-ops"})
    await gql(START, {"id": "s-elsewhere"})
    async with WSClient.open(url) as client:
        sub = await client.subscribe(OPERATIONS_RECORDED, {"id": "s-ops"})
        await subscribed(app)

        await gql(RECORD, {"id": "s-ops", "ops": ops("o-3", "o-1", "o-2", toolOutput="done")})
        first = (await client.next(sub))["operationsRecorded"]
        await gql(RECORD, {"id": "s-ops", "ops": ops("o-1", "o-2")})  # a retry: nothing new
        await gql(RECORD, {"id": "s-elsewhere", "ops": ops("x-1")})
        await gql(RECORD, {"id": "s-ops", "ops": ops("o-2", "o-4")})
        second = (await client.next(sub))["operationsRecorded"]
        await client.nothing()

    assert first == {
        "sessionId": "s-ops",
        "operations": [
            {"operationId": i, "operationType": "tool_execution_started", "toolOutput": "done"}
            for i in ("o-3", "o-1", "o-2")
        ],
    }
    assert [o["operationId"] for o in second["operations"]] == ["o-4"]


async def test_operations_recorded_reads_heavy_columns_only_when_selected(
    app: Starlette, url: str, gql: GraphQLClient, sql: SqlRecorder
) -> None:
    await gql(START, {"id": "s-light"})
    async with WSClient.open(url) as client:
        sub = await client.subscribe(
            """subscription { operationsRecorded(sessionId: "s-light") {
                 operations { operationId } } }"""
        )
        await subscribed(app)
        sql.clear()
        await gql(RECORD, {"id": "s-light", "ops": ops("o-1", toolOutput="x" * 1000)})
        data = await client.next(sub)

    assert data == {"operationsRecorded": {"operations": [{"operationId": "o-1"}]}}
    reads = [s for s in sql.statements if "BETWEEN" in s]  # the subscription's read
    assert len(reads) == 1, sql.report()
    assert "tool_output" not in reads[0], sql.report()
    assert "tool_input" not in reads[0], sql.report()


async def test_an_event_costs_the_same_statements_whatever_the_batch_size(
    app: Starlette, url: str, gql: GraphQLClient, sql: SqlRecorder
) -> None:
    await gql(START, {"id": "s-count", "wf": "wf-1"})
    deep = """subscription { sessionUpdated(id: "s-count") {
        workflowName operationCount operations(first: 50) { nodes { operationType } } } }"""
    counts = []
    async with WSClient.open(url) as client:
        updates = await client.subscribe(deep)
        batches = await client.subscribe(OPERATIONS_RECORDED, {"id": "s-count"})
        await client.next(updates)  # the current state, first
        await subscribed(app, 2)
        for size in (1, 200):
            sql.clear()
            ids = [f"o-{size}-{n}" for n in range(size)]
            await gql(RECORD, {"id": "s-count", "ops": ops(*ids)})
            received = {m["id"]: m for m in [await client.receive(), await client.receive()]}
            counts.append(len(sql.statements))
            assert set(received) == {updates, batches}

    assert counts[0] == counts[1], sql.report()


async def test_sessions_changed_follows_the_filter_and_reports_sessions_leaving_it(
    app: Starlette, url: str, gql: GraphQLClient
) -> None:
    async with WSClient.open(url) as client:
        running = await client.subscribe(SESSIONS_CHANGED, {"statuses": ["RUNNING"]})
        nightly = await client.subscribe(SESSIONS_CHANGED, {"wf": "wf-nightly"})
        await subscribed(app, 2)

        await gql(START, {"id": "s-a", "wf": "wf-nightly"})
        got = [await client.receive(), await client.receive()]
        await gql(START, {"id": "s-b", "status": "PENDING"})  # neither filter matches
        await gql(COMPLETE, {"id": "s-a"})
        got += [await client.receive(), await client.receive()]
        await client.nothing()

    by_subscription: dict[str, list[Any]] = {running: [], nightly: []}
    for message in got:
        assert message["type"] == "next", message
        by_subscription[message["id"]].append(message["payload"]["data"]["sessionsChanged"])
    assert by_subscription[running] == [
        {
            "kind": "STARTED",
            "matchesFilter": True,
            "session": {"id": "s-a", "status": "RUNNING", "workflowName": None},
        },
        {
            "kind": "COMPLETED",
            "matchesFilter": False,
            "session": {"id": "s-a", "status": "COMPLETED", "workflowName": None},
        },
    ]
    assert [(c["kind"], c["matchesFilter"]) for c in by_subscription[nightly]] == [
        ("STARTED", True),
        ("COMPLETED", True),
    ]


async def test_several_subscribers_each_get_the_event(
    app: Starlette, url: str, gql: GraphQLClient
) -> None:
    async with WSClient.open(url) as one, WSClient.open(url) as two:
        subs = [await c.subscribe(SESSION_UPDATED, {"id": "s-fan"}) for c in (one, two)]
        await subscribed(app, 2)
        await gql(START, {"id": "s-fan"})

        received = [await c.next(s) for c, s in zip((one, two), subs, strict=True)]

    assert [r["sessionUpdated"]["id"] for r in received] == ["s-fan", "s-fan"]


async def test_completing_a_subscription_stops_its_events(
    app: Starlette, url: str, gql: GraphQLClient
) -> None:
    async with WSClient.open(url) as client:
        sub = await client.subscribe(SESSION_UPDATED, {"id": "s-stop"})
        await subscribed(app)
        await client.complete(sub)
        await until(lambda: events_of(app).subscriber_count == 0)
        await gql(START, {"id": "s-stop"})

        await client.nothing()


async def test_queries_and_mutations_run_over_the_socket_too(url: str, gql: GraphQLClient) -> None:
    await gql(START, {"id": "s-ws"})
    async with WSClient.open(url) as client:
        query = await client.subscribe('{ session(id: "s-ws") { id operationCount } }')
        first = await client.next(query)
        assert (await client.receive())["type"] == "complete"
        record = await client.subscribe(RECORD, {"id": "s-ws", "ops": ops("o-1")})
        assert await client.next(record) == {"recordOperations": {"recordedOperationIds": ["o-1"]}}
        assert (await client.receive())["type"] == "complete"
        again = await client.subscribe('{ session(id: "s-ws") { id operationCount } }')
        second = await client.next(again)  # a fresh read, not the first query's cache

    assert first == {"session": {"id": "s-ws", "operationCount": 0}}
    assert second == {"session": {"id": "s-ws", "operationCount": 1}}


@pytest.mark.parametrize(
    ("query", "variables", "message"),
    [
        (SESSION_UPDATED, {"id": " "}, "`id` must be 1 to 128 printable characters"),
        (OPERATIONS_RECORDED, {"id": "x" * 129}, "`sessionId` must be 1 to 128 printable"),
        ("subscription { sessionUpdated(id: 1) { id } }", {}, "String cannot represent"),
        ('subscription { sessionUpdated(id: "a") { nope } }', {}, "Cannot query field 'nope'"),
        (SESSIONS_CHANGED, {"statuses": ["DONE"]}, "Value 'DONE' does not exist"),
    ],
)
async def test_a_bad_subscription_gets_an_error_with_a_code(
    url: str, query: str, variables: dict[str, Any], message: str
) -> None:
    async with WSClient.open(url) as client:
        sub = await client.subscribe(query, variables)
        reply = await client.receive()
        if reply["type"] == "next":  # raised by the resolver: a result, then complete
            errors = reply["payload"]["errors"]
            assert (await client.receive()) == {"id": sub, "type": "complete"}
        else:
            assert reply["type"] == "error", reply
            errors = reply["payload"]
        # The connection stays usable.
        query_id = await client.subscribe("{ sessions(first: 1) { totalCount } }")
        assert await client.next(query_id) == {"sessions": {"totalCount": 0}}

    assert len(errors) == 1, errors
    assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT", errors
    assert message in errors[0]["message"], errors


# -- limits -----------------------------------------------------------------------


@asynccontextmanager
async def _server(settings: Settings, **changes: Any) -> AsyncIterator[tuple[Starlette, str]]:
    app = create_app(settings.model_copy(update=changes))
    async with app.router.lifespan_context(app), serve(app) as url:
        yield app, url


async def test_a_connection_that_never_initialises_is_closed(
    app: Starlette, settings: Settings
) -> None:
    async with (
        _server(settings, ws_connection_init_timeout_seconds=0.2) as (_, url),
        WSClient.open(url, init=False) as client,
    ):
        with pytest.raises(ConnectionClosed) as closed:
            await client.receive(within=5)

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4408


async def test_subscriptions_per_connection_are_capped(app: Starlette, settings: Settings) -> None:
    async with (
        _server(settings, ws_max_subscriptions=2) as (server, url),
        WSClient.open(url) as client,
    ):
        for n in range(2):
            await client.subscribe(SESSION_UPDATED, {"id": f"s-{n}"})
        await subscribed(server, 2)
        third = await client.subscribe(SESSION_UPDATED, {"id": "s-2"})
        refused = await client.receive()

    assert refused["id"] == third
    assert refused["type"] == "error"
    [error] = refused["payload"]
    assert error["extensions"] == {
        "code": "QUERY_TOO_COMPLEX",
        "limit": "subscriptionsPerConnection",
        "maximum": 2,
    }


async def test_the_server_pings_an_idle_connection(app: Starlette, settings: Settings) -> None:
    async with (
        _server(settings, ws_keepalive_seconds=0.1) as (_, url),
        WSClient.open(url) as client,
    ):
        await client.nothing(within=0.5)

        assert client.pings >= 2


async def test_the_legacy_graphql_ws_protocol_is_refused(url: str) -> None:
    from websockets.asyncio.client import connect

    async with connect(url, subprotocols=["graphql-ws"]) as ws:  # type: ignore[list-item]
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4406


async def test_a_cross_site_page_cannot_open_a_socket(url: str) -> None:
    from websockets.asyncio.client import connect

    with pytest.raises(InvalidStatus) as refused:
        async with connect(
            url, subprotocols=["graphql-transport-ws"], origin="https://evil.example"
        ):  # type: ignore[list-item, arg-type]
            pass

    assert refused.value.response.status_code == 403


async def test_a_subscriber_that_falls_behind_is_told_and_memory_stays_bounded(
    app: Starlette, settings: Settings
) -> None:
    """The client stops reading while big batches land: the server's sends block, at most
    ``subscriber_queue_size`` events wait, then the subscription ends with EVENTS_MISSED."""
    async with _server(settings, subscriber_queue_size=3) as (server, url):
        transport = httpx.ASGITransport(app=server)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            gql = GraphQLClient(http)
            await gql(START, {"id": "s-slow"})
            async with WSClient.open(
                url, receive_buffer=65536, max_queue=1, max_size=None, compression=None
            ) as client:
                sub = await client.subscribe(OPERATIONS_RECORDED, {"id": "s-slow"})
                await subscribed(server)
                big = "x" * 1_000_000
                for n in range(20):
                    await gql(RECORD, {"id": "s-slow", "ops": ops(f"o-{n}", toolOutput=big)})
                mailboxes = list(events_of(server)._mailboxes)

                delivered = 0
                while True:
                    message = await client.receive(within=30)
                    if message["type"] != "next" or "errors" in message["payload"]:
                        break
                    delivered += 1
                assert await client.receive() == {"id": sub, "type": "complete"}

    assert [len(m._pending) for m in mailboxes] == [0]  # dropped once it failed
    assert 0 < delivered < 20
    assert message["type"] == "next", message
    assert message["id"] == sub
    [error] = message["payload"]["errors"]
    assert error["extensions"] == {
        "code": "EVENTS_MISSED",
        "reason": "subscriberTooSlow",
        "limit": 3,
    }


async def test_a_long_subscription_keeps_no_memo_per_event(
    app: Starlette, url: str, gql: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    executors: list[CompiledExecutionContext] = []
    build = CompiledExecutionContext.build_per_event_executor

    def recording(self: CompiledExecutionContext, payload: Any) -> CompiledExecutionContext:
        executors.append(build(self, payload))
        return executors[-1]

    monkeypatch.setattr(CompiledExecutionContext, "build_per_event_executor", recording)
    await gql(START, {"id": "s-long"})
    memo_sizes = []
    async with WSClient.open(url) as client:
        sub = await client.subscribe(SESSION_UPDATED, {"id": "s-long"})
        await client.next(sub)  # the current state
        for n in range(8):
            await gql(RECORD, {"id": "s-long", "ops": ops(f"o-{n}")})
            await client.next(sub)
            latest = executors[-1]
            memo_sizes.append(len(latest._relevant_sub_fields) + len(latest._plans))

    assert len(executors) >= 8
    assert len(set(memo_sizes)) == 1, memo_sizes  # what one event needs, not one per event
