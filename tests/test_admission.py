"""A process runs at most SESSIONGRAPH_MAX_CONCURRENT_REQUESTS HTTP requests at once; up
to SESSIONGRAPH_REQUEST_QUEUE_SIZE more wait their turn, each for at most
SESSIONGRAPH_REQUEST_QUEUE_TIMEOUT_SECONDS; any other is refused at once with
UNAVAILABLE (HTTP 503, Retry-After); a connection that comes back sooner than its
Retry-After waits for it. WebSockets are not counted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from starlette.applications import Starlette

from sessiongraph.admission import BUSY, RETRY_AFTER_SECONDS, Admission
from sessiongraph.app import create_app
from sessiongraph.config import Settings
from sessiongraph.db.engine import create_engine
from sessiongraph.db.tables import sessions
from sessiongraph.errors import Unavailable
from tests.helpers import GraphQLClient
from tests.live import WSClient, serve, until

START = """mutation ($id: String!) {
  startSession(input: {id: $id, startedAt: "2026-04-18T08:00:00Z"}) { id status } }"""
SESSIONS = "{ sessions(first: 5) { totalCount nodes { id } } }"
SESSION_UPDATED = "subscription ($id: String!) { sessionUpdated(id: $id) { id status } }"

REFUSAL = {
    "data": None,
    "errors": [
        {
            "message": BUSY,
            "extensions": {
                "code": "UNAVAILABLE",
                "retryAfterSeconds": Unavailable.RETRY_AFTER_SECONDS,
            },
        }
    ],
}

Limited = Callable[..., AbstractAsyncContextManager[tuple[Starlette, httpx.AsyncClient]]]


@pytest.fixture
def limited(settings: Settings) -> Limited:
    """Opens an app on the test database (emptied) with some settings changed, and an
    HTTP client of it."""

    @asynccontextmanager
    async def open_app(**changes: Any) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
        app = create_app(settings.model_copy(update=changes))
        async with app.router.lifespan_context(app):
            if not settings.is_sqlite:  # one shared database: start each test empty
                async with app.state.engine.begin() as conn:
                    await conn.execute(sa.text("TRUNCATE workflows, sessions, operations CASCADE"))
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                yield app, c

    return open_app


@asynccontextmanager
async def session_held(settings: Settings, session_id: str) -> AsyncIterator[None]:
    """Another client's transaction that has inserted ``session_id`` and not committed:
    a mutation starting that session waits inside its execution until this ends (on
    PostgreSQL for the row, on SQLite for the database's write lock). Rolled back."""
    other = create_engine(settings.model_copy(update={"pool_size": 1}))
    try:
        async with other.connect() as conn:
            transaction = await conn.begin()
            await conn.execute(sessions.insert().values(id=session_id, status="running"))
            yield
            await transaction.rollback()
    finally:
        await other.dispose()


def post(http: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None) -> Any:
    return asyncio.create_task(http.post("/graphql", json={"query": query, "variables": variables}))


async def test_beyond_the_queue_a_request_is_refused_at_once(
    settings: Settings, limited: Limited
) -> None:
    async with limited(max_concurrent_requests=1, request_queue_size=1) as (app, http):
        admission: Admission = app.state.admission
        async with session_held(settings, "s-held"):
            # Given one request running (waiting inside its execution) and one queued
            running = post(http, START, {"id": "s-held"})
            await until(lambda: admission.running == 1)
            queued = post(http, SESSIONS)
            await until(lambda: admission.waiting == 1)

            # When a third arrives
            refused = await http.post("/graphql", json={"query": SESSIONS})

            # Then it is refused before the other two are done: UNAVAILABLE, HTTP 503,
            # Retry-After, in the GraphQL error shape
            assert not running.done()
            assert not queued.done()
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == str(Unavailable.RETRY_AFTER_SECONDS)
            assert refused.headers["content-type"] == "application/json"
            assert refused.json() == REFUSAL

        # And once the running one can go on, both it and the queued one are answered
        started, listed = await running, await queued
    assert started.status_code == 200
    assert started.json()["data"] == {"startSession": {"id": "s-held", "status": "RUNNING"}}
    assert listed.status_code == 200
    assert listed.json()["data"] == {"sessions": {"totalCount": 1, "nodes": [{"id": "s-held"}]}}
    assert (admission.running, admission.waiting) == (0, 0)


async def test_queued_requests_run_in_their_turn_and_all_complete(
    settings: Settings, limited: Limited
) -> None:
    async with limited(max_concurrent_requests=2, request_queue_size=20) as (app, http):
        admission: Admission = app.state.admission
        client = GraphQLClient(http)
        await client(START, {"id": "s-1"})
        async with session_held(settings, "s-held"):
            # Given both places taken by requests waiting inside their execution
            blocked = [post(http, START, {"id": "s-held"}) for _ in range(2)]
            await until(lambda: admission.running == 2)

            # When more requests arrive than can run, they all wait
            queued = [post(http, SESSIONS) for _ in range(20)]
            await until(lambda: admission.waiting == 20)
            assert not any(task.done() for task in queued)

        # Then, once there is room, every one is answered
        answers = await asyncio.gather(*queued)
        firsts = await asyncio.gather(*blocked)
    assert [answer.status_code for answer in answers] == [200] * 20
    assert all("errors" not in answer.json() for answer in answers)
    # (the two blocked starts are the same call: one stores it, the other returns it)
    assert ["errors" in first.json() for first in firsts] == [False, False]
    assert (admission.running, admission.waiting) == (0, 0)


async def test_a_request_waits_in_the_queue_no_longer_than_its_timeout(
    settings: Settings, limited: Limited
) -> None:
    async with limited(
        max_concurrent_requests=1, request_queue_size=5, request_queue_timeout_seconds=0.3
    ) as (app, http):
        admission: Admission = app.state.admission
        async with session_held(settings, "s-held"):
            running = post(http, START, {"id": "s-held"})
            await until(lambda: admission.running == 1)

            # When a request waits longer than the queue timeout
            started = time.monotonic()
            refused = await http.post("/graphql", json={"query": SESSIONS})
            waited = time.monotonic() - started

            # Then it is refused as the server being busy, having left the queue
            assert refused.status_code == 503
            assert refused.json() == REFUSAL
            assert waited >= 0.3
            assert admission.waiting == 0
            assert not running.done()
        assert (await running).status_code == 200


async def test_a_connection_that_retries_sooner_than_retry_after_waits_for_it(
    settings: Settings, limited: Limited
) -> None:
    async with limited(max_concurrent_requests=1, request_queue_size=0) as (app, http):
        admission: Admission = app.state.admission
        other_transport = httpx.ASGITransport(app=app, client=("127.0.0.2", 50000))
        async with (
            httpx.AsyncClient(transport=other_transport, base_url="http://testserver") as other,
            session_held(settings, "s-held"),
        ):
            running = post(http, START, {"id": "s-held"})
            await until(lambda: admission.running == 1)
            # Given a connection that was refused
            assert (await http.post("/graphql", json={"query": SESSIONS})).status_code == 503
            refused_at = time.monotonic()

            # Then another connection is still refused at once
            assert (await other.post("/graphql", json={"query": SESSIONS})).status_code == 503
            assert time.monotonic() - refused_at < RETRY_AFTER_SECONDS
        assert (await running).status_code == 200

        # When the refused connection sends again at once, with room to run it now
        again = await http.post("/graphql", json={"query": SESSIONS})

        # Then it is answered, once the Retry-After it was given has passed
        assert again.status_code == 200
        assert time.monotonic() - refused_at >= RETRY_AFTER_SECONDS


async def test_websockets_are_not_counted(settings: Settings, limited: Limited) -> None:
    async with limited(max_concurrent_requests=1, request_queue_size=0) as (app, http):
        admission: Admission = app.state.admission
        await GraphQLClient(http)(START, {"id": "s-1"})
        async with serve(app) as url, session_held(settings, "s-held"):
            # Given HTTP at its limit, with no queue: another request is refused
            running = post(http, START, {"id": "s-held"})
            await until(lambda: admission.running == 1)
            assert (await http.post("/graphql", json={"query": SESSIONS})).status_code == 503

            # When a client subscribes over a WebSocket
            async with WSClient.open(url) as ws:
                sub = await ws.subscribe(SESSION_UPDATED, {"id": "s-1"})

                # Then it is served: its read does not wait for a place
                assert await ws.next(sub) == {"sessionUpdated": {"id": "s-1", "status": "RUNNING"}}
            assert admission.running == 1
        assert (await running).status_code == 200


def test_the_limits_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONGRAPH_MAX_CONCURRENT_REQUESTS", "3")
    monkeypatch.setenv("SESSIONGRAPH_REQUEST_QUEUE_SIZE", "7")
    monkeypatch.setenv("SESSIONGRAPH_REQUEST_QUEUE_TIMEOUT_SECONDS", "2.5")

    admission: Admission = create_app(Settings()).state.admission

    assert (admission.limit, admission.queue_size, admission.queue_timeout) == (3, 7, 2.5)
