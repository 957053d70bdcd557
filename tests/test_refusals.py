"""Refusals before GraphQL runs anything: every one JSON in the GraphQL error shape, with
the HTTP status GraphQL over HTTP gives it, on the short way and on Strawberry's own;
and a document of several operations runs none unless one is named."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from sessiongraph.app import create_app
from sessiongraph.config import Settings
from tests.live import WSClient, serve

START = (
    'mutation Start { startSession(input: {id: "s-1", startedAt: "2026-04-18T08:00:00Z"}) { id } }'
)
QUERY = "{ sessions { totalCount } }"


@pytest.fixture(params=["lean", "plain"])
async def client(
    request: pytest.FixtureRequest, settings: Settings, app: Starlette
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app on the test's database, with batching on: the short way (as
    ``serve`` runs), or Strawberry's own request path."""
    other = create_app(settings.model_copy(update={"batching": True}))
    other.state.schema.lean = request.param == "lean"
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


def refusal(response: httpx.Response, status: int) -> dict[str, Any]:
    """The one error of a refusal, checked to be JSON in the GraphQL error shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json", response.text
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert error["message"]
    return dict(error)


async def stored_sessions(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        count: int = (await conn.execute(sa.text("SELECT count(*) FROM sessions"))).scalar_one()
        return count


@pytest.mark.parametrize(
    ("method", "kwargs", "status"),
    [
        pytest.param("POST", {"json": {}}, 400, id="an-empty-object"),
        pytest.param("POST", {"json": {"query": None}}, 400, id="a-null-query"),
        pytest.param(
            "POST",
            {"content": b'{"query": "{ __typename }"}', "headers": {"content-type": "text/plain"}},
            415,
            id="text-plain",
        ),
        pytest.param("POST", {"content": b'{"query": "{ __typename }"}'}, 415, id="no-type"),
        pytest.param("POST", {"data": {"query": "{ __typename }"}}, 415, id="a-form"),
        pytest.param(
            "POST",
            {"content": b"{ __typename }", "headers": {"content-type": "application/graphql"}},
            415,
            id="application-graphql",
        ),
        pytest.param(
            "POST",
            {"content": b'{"query":', "headers": {"content-type": "application/json"}},
            400,
            id="invalid-json",
        ),
        pytest.param(
            "POST",
            {"json": {"query": 'subscription { sessionUpdated(id: "s-1") { id } }'}},
            400,
            id="a-subscription-by-post",
        ),
        pytest.param(
            "POST",
            {"json": {"query": "query A { __typename }", "operationName": "B"}},
            400,
            id="an-unknown-operation-name",
        ),
        pytest.param(
            "POST",
            {"json": [{"query": "query A { __typename }", "operationName": "B"}]},
            400,
            id="an-unknown-operation-name-in-a-batch",
        ),
        pytest.param(
            "GET", {"headers": {"accept": "application/json"}}, 400, id="a-get-without-a-query"
        ),
        pytest.param(
            "GET",
            {"params": {"query": 'subscription { sessionUpdated(id: "s-1") { id } }'}},
            400,
            id="a-subscription-by-get",
        ),
    ],
)
async def test_a_refused_request_is_answered_in_the_graphql_error_shape(
    client: httpx.AsyncClient, method: str, kwargs: dict[str, Any], status: int
) -> None:
    response = await client.request(method, "/graphql", **kwargs)

    refusal(response, status)


async def test_a_mutation_over_get_is_405_allowing_post(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    response = await client.get("/graphql", params={"query": START})

    error = refusal(response, 405)
    assert response.headers["allow"] == "POST"
    assert "POST" in error["message"]
    assert await stored_sessions(engine) == 0


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
async def test_other_methods_are_405_allowing_get_and_post(
    client: httpx.AsyncClient, method: str
) -> None:
    response = await client.request(method, "/graphql", json={"query": QUERY})

    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.headers["content-type"] == "application/json"
    if method != "HEAD":  # a HEAD answer has no body
        refusal(response, 405)


async def test_routing_refusals_elsewhere_are_json_too(client: httpx.AsyncClient) -> None:
    missing = await client.get("/nowhere")
    wrong_method = await client.post("/healthz")

    assert refusal(missing, 404)["message"] == "Not Found"
    refusal(wrong_method, 405)
    assert set(wrong_method.headers["allow"].split(", ")) == {"GET", "HEAD"}


async def test_several_operations_without_an_operation_name_run_none(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    # Given a document whose first operation writes: Strawberry used to run it
    document = f"{START} query Count {{ sessions {{ totalCount }} }}"

    response = await client.post("/graphql", json={"query": document})

    error = refusal(response, 400)
    assert error["message"] == (
        "This document has 2 operations (Start, Count): name the one to run in `operationName`"
    )
    assert await stored_sessions(engine) == 0


async def test_several_operations_in_a_batch_item_run_none(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    batch = [{"query": QUERY}, {"query": f"{START} query Count {{ __typename }}"}]

    response = await client.post("/graphql", json=batch)

    refusal(response, 400)
    assert await stored_sessions(engine) == 0


async def test_the_named_operation_of_several_runs(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    document = f"{START} query Count {{ sessions {{ totalCount }} }}"

    count = await client.post("/graphql", json={"query": document, "operationName": "Count"})
    start = await client.post("/graphql", json={"query": document, "operationName": "Start"})

    assert count.json()["data"] == {"sessions": {"totalCount": 0}}
    assert start.json()["data"] == {"startSession": {"id": "s-1"}}
    assert await stored_sessions(engine) == 1


async def test_one_anonymous_operation_needs_no_name(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", json={"query": f"{QUERY} fragment F on Session {{ id }}"}
    )

    # one operation (and an unused fragment, which validation reports): no name needed
    [error] = response.json()["errors"]
    assert response.status_code == 200
    assert "Fragment" in error["message"]
    assert "never used" in error["message"]


async def test_several_operations_without_a_name_over_websocket_run_none(
    app: Starlette, engine: AsyncEngine
) -> None:
    document = f'{START} subscription Live {{ sessionUpdated(id: "s-1") {{ id }} }}'

    async with serve(app) as url, WSClient.open(url) as ws:
        operation = await ws.subscribe(document)
        message = await ws.receive()

    assert message["id"] == operation
    assert message["type"] == "error"
    [error] = message["payload"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}
    assert "operationName" in error["message"]
    assert await stored_sessions(engine) == 0
