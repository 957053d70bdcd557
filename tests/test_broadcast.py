"""Events across processes, through PostgreSQL LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from sessiongraph.events import PostgresBroker
from tests.helpers import GraphQLClient
from tests.live import WSClient, serve, spawned_server, until
from tests.test_subscriptions import (
    COMPLETE,
    OPERATIONS_RECORDED,
    RECORD,
    SESSION_UPDATED,
    START,
    events_of,
    ops,
    subscribed,
)

pytestmark = pytest.mark.postgres_only


@pytest.fixture
def two_servers(tmp_path: Path, postgres_url: str, app: Starlette) -> Iterator[tuple[str, str]]:
    """Two `sessiongraph serve` processes on one PostgreSQL database (``app`` empties it)."""
    options = ("--database-url", postgres_url, "--log-level", "warning")
    with spawned_server(tmp_path, *options) as one, spawned_server(tmp_path, *options) as two:
        yield one, two


async def _until_live(
    client: WSClient, subscription: str, write: Callable[[int], Awaitable[None]]
) -> dict[str, Any]:
    """Write until the subscription, on another process, reports a write: from then on it
    is listening. Returns that first result."""
    for attempt in range(50):
        await write(attempt)
        try:
            message = await client.receive(within=0.2)
        except TimeoutError:
            continue
        assert message["id"] == subscription, message
        data: dict[str, Any] = message["payload"]["data"]
        return data
    raise AssertionError("the subscription never saw a write")


async def test_a_write_on_one_server_reaches_a_subscriber_on_the_other(
    two_servers: tuple[str, str],
) -> None:
    reader, writer = two_servers
    async with httpx.AsyncClient(base_url=writer, timeout=30) as http:
        gql = GraphQLClient(http)
        await gql(START, {"id": "s-x"})
        ws_url = reader.replace("http://", "ws://") + "/graphql"
        async with WSClient.open(ws_url) as client:
            batches = await client.subscribe(OPERATIONS_RECORDED, {"id": "s-x"})

            warmups: list[str] = []

            async def record_warmup(n: int) -> None:
                warmups.append(f"warm-{n}")
                await gql(RECORD, {"id": "s-x", "ops": ops(warmups[-1])})

            await _until_live(client, batches, record_warmup)
            await client.nothing(within=0.5)  # late warm-up batches

            # 1000 operations with 128-character ids: their ids alone would be ~130 kB,
            # far over NOTIFY's 8000 bytes. The event names rows; the reader loads them.
            ids = [f"{n:04d}".ljust(128, "x") for n in range(1000)]
            await gql(RECORD, {"id": "s-x", "ops": ops(*ids, toolOutput="big batch")})
            batch = (await client.next(batches))["operationsRecorded"]
            await client.complete(batches)

            updates = await client.subscribe(SESSION_UPDATED, {"id": "s-x"})
            current = (await client.next(updates))["sessionUpdated"]  # listening now
            await gql(COMPLETE, {"id": "s-x"})
            completed = (await client.next(updates))["sessionUpdated"]

    assert [o["operationId"] for o in batch["operations"]] == ids
    assert {o["toolOutput"] for o in batch["operations"]} == {"big batch"}
    assert current["status"] == "RUNNING"
    assert current["operationCount"] == len(ids) + len(warmups)
    assert completed["status"] == "COMPLETED"
    assert completed["totalCostUsd"] == "0.0438"


async def test_a_lost_listener_ends_subscriptions_with_events_missed_then_recovers(
    app: Starlette, engine: AsyncEngine, gql: GraphQLClient
) -> None:
    broker = events_of(app)
    assert isinstance(broker, PostgresBroker)
    async with serve(app) as url, WSClient.open(url) as client:
        before = await client.subscribe(SESSION_UPDATED, {"id": "s-r"})
        await subscribed(app)
        lost_pid = broker.listener_pid
        async with engine.begin() as conn:
            await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": lost_pid})

        ended = await client.receive()
        assert await client.receive() == {"id": before, "type": "complete"}
        await until(lambda: broker.listener_pid not in (None, lost_pid))
        after = await client.subscribe(SESSION_UPDATED, {"id": "s-r"})
        await subscribed(app)
        await gql(START, {"id": "s-r"})
        started = await client.next(after)

    assert ended["id"] == before
    [error] = ended["payload"]["errors"]
    assert error["extensions"] == {"code": "EVENTS_MISSED", "reason": "listenerReconnected"}
    assert started["sessionUpdated"]["status"] == "RUNNING"


async def test_a_notification_that_is_not_an_event_is_ignored(
    app: Starlette, engine: AsyncEngine, gql: GraphQLClient
) -> None:
    async with serve(app) as url, WSClient.open(url) as client:
        sub = await client.subscribe(SESSION_UPDATED, {"id": "s-n"})
        await subscribed(app)
        async with engine.begin() as conn:
            for junk in (
                "not json",
                "[]",
                '{"kind": "exploded", "session": "s-n", "rows": null}',
                '{"kind": "recorded", "session": "s-n", "rows": null}',
                '{"kind": "started", "session": "s-n", "rows": [1, 2]}',
            ):
                await conn.execute(
                    sa.text("SELECT pg_notify('sessiongraph_events', :p)"), {"p": junk}
                )
        await gql(START, {"id": "s-n"})

        assert (await client.next(sub))["sessionUpdated"]["id"] == "s-n"


async def test_serve_with_workers_shares_one_cursor_secret(
    tmp_path: Path, postgres_url: str, app: Starlette, gql: GraphQLClient
) -> None:
    for n in range(3):
        await gql(START, {"id": f"s-{n}"})
    options = ("--database-url", postgres_url, "--workers", "2", "--log-level", "warning")
    page = """query ($after: String) {
      sessions(first: 1, after: $after) { nodes { id } pageInfo { endCursor } } }"""
    fresh_connections = httpx.Limits(max_keepalive_connections=0)
    with spawned_server(tmp_path, *options) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30, limits=fresh_connections) as http:
            workers = GraphQLClient(http)

            async def pages(after: str | None) -> list[dict[str, Any]]:
                # Many at once, each on its own connection: both workers take some.
                found = await asyncio.gather(*(workers(page, {"after": after}) for _ in range(40)))
                return [data["sessions"] for data in found]

            firsts = await pages(None)
            cursors = {first["pageInfo"]["endCursor"] for first in firsts}
            seconds = [second for cursor in cursors for second in await pages(cursor)]

    assert len(cursors) == 1  # one secret: every worker signs the same cursor
    assert {second["nodes"][0]["id"] for second in seconds} == {"s-1"}
