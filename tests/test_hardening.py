"""Attempts to get around the limits, the guard or the allow-list, and to crash the server."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from graphql import parse
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.routing import Mount

from sessiongraph.app import create_app
from sessiongraph.config import Settings, token_digest
from sessiongraph.graphql.limits import measure
from sessiongraph.graphql.schema import build_schema
from tests.conftest import Configured
from tests.helpers import GraphQLClient, insert_session
from tests.live import WSClient, serve

QUERY = "{ sessions { totalCount } }"


def bomb(levels: int, fan: int) -> str:
    """Each fragment spreads the next ``fan`` times: fan**levels leaves, linear text."""
    fragments = [f"fragment F{levels} on SessionConnection {{ totalCount }}"]
    for n in range(levels - 1, -1, -1):
        spreads = " ".join([f"...F{n + 1}"] * fan)
        fragments.append(f"fragment F{n} on SessionConnection {{ {spreads} }}")
    return "{ sessions { ...F0 } } " + " ".join(fragments)


def test_a_fragment_bomb_is_measured_in_linear_time() -> None:
    document = parse(bomb(40, 4))  # 4**40 spreads if each were walked again
    operation = document.definitions[0]

    measured = measure(build_schema(Settings())._schema, document, operation, {})  # type: ignore[arg-type]

    assert (measured.depth, measured.cost) == (2, 50)


async def test_a_fragment_bomb_is_answered(gql: GraphQLClient) -> None:
    body = await gql.raw(bomb(30, 4))

    assert body["data"] == {"sessions": {"totalCount": 0}}


@pytest.mark.parametrize(
    ("variables", "definition"),
    [
        pytest.param({}, "$n: Int = 1000", id="default"),
        pytest.param({"n": 1000.0}, "$n: Int", id="float"),
    ],
)
async def test_cost_counts_variables_as_execution_sees_them(
    gql: GraphQLClient, variables: dict[str, Any], definition: str
) -> None:
    query = (
        f"query ({definition}) {{ sessions(first: 200) {{ nodes {{ "
        "operations(first: $n) { totalCount } } } }"
    )

    error = await gql.error(query, variables, code="QUERY_TOO_COMPLEX")

    assert error["extensions"]["requested"] == 200 + 200 * 1000


@pytest.mark.parametrize("how", ["mount", "root_path"])
async def test_the_guard_holds_under_a_path_prefix(
    app: Starlette, settings: Settings, how: str
) -> None:
    secured = create_app(settings.model_copy(update={"token_sha256": [token_digest("t" * 20)]}))
    outer = Starlette(routes=[Mount("/api", secured)]) if how == "mount" else secured
    root = "" if how == "mount" else "/api"
    transport = httpx.ASGITransport(app=outer, root_path=root)
    async with (
        secured.router.lifespan_context(secured),
        httpx.AsyncClient(transport=transport, base_url="http://t") as http,
    ):
        response = await http.post("/api/graphql", json={"query": QUERY})

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        pytest.param(b"123", "application/x-application/json", id="odd-json-type"),
        pytest.param(
            b"\xef\xbb\xbf" + json.dumps([{"query": QUERY}]).encode(),
            "application/json",
            id="bom-batch",
        ),
        pytest.param(
            json.dumps([{"query": QUERY}]).encode("utf-16-be"), "application/json", id="utf16-batch"
        ),
        pytest.param(
            b'{"query": "'
            + QUERY.encode()
            + b'", "variables": '
            + b"[" * 5000
            + b"]" * 5000
            + b"}",
            "application/json",
            id="deep-variables",
        ),
        pytest.param(b'{"query": 5}', "application/json", id="query-not-a-string"),
        pytest.param(
            b'{"query": "{ x }", "extensions": "x"}',
            "application/json",
            id="extensions-not-an-object",
        ),
        pytest.param(
            b'{"query": "{ x }", "operationName": 5}',
            "application/json",
            id="operation-name-not-a-string",
        ),
    ],
)
async def test_malformed_json_requests_get_a_400_in_the_graphql_shape(
    http: httpx.AsyncClient, content: bytes, content_type: str
) -> None:
    response = await http.post("/graphql", content=content, headers={"content-type": content_type})

    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}


async def test_get_with_malformed_variables_is_a_400(http: httpx.AsyncClient) -> None:
    response = await http.get("/graphql", params={"query": QUERY, "variables": "[" * 5000})

    assert response.status_code == 400


@pytest.mark.parametrize(("length", "status"), [(50_000, 200), (50_001, 400)])
async def test_query_length_limit_edge(http: httpx.AsyncClient, length: int, status: int) -> None:
    query = QUERY + " " * (length - len(QUERY))

    response = await http.post("/graphql", json={"query": query})

    assert response.status_code == status
    if status == 400:
        [error] = response.json()["errors"]
        assert error["extensions"] == {
            "code": "QUERY_TOO_COMPLEX",
            "limit": "maxQueryLength",
            "maximum": 50_000,
            "requested": 50_001,
        }


async def test_production_drops_suggestions_inside_variable_errors(configured: Configured) -> None:
    query = "query ($o: SessionOrder) { sessions(orderBy: $o) { totalCount } }"
    async with configured(env="production") as http:
        response = await http.post(
            "/graphql", json={"query": query, "variables": {"o": {"fild": "STARTED_AT"}}}
        )

    [error] = response.json()["errors"]
    assert "Did you mean" not in error["message"]
    assert "fild" in error["message"]


@asynccontextmanager
async def _live(settings: Settings, **changes: Any) -> AsyncIterator[str]:
    other = create_app(settings.model_copy(update=changes))
    async with other.router.lifespan_context(other), serve(other) as url:
        yield url


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"query": QUERY, "variables": [1]}, "`variables` must be a JSON object"),
        ({"query": QUERY, "operationName": 5}, "`operationName` must be a string"),
        ({"query": 5}, "`query` must be a string"),
        ({"variables": {}}, "`query` is missing"),
    ],
)
async def test_a_malformed_websocket_operation_is_refused(
    url: str, payload: dict[str, Any], message: str
) -> None:
    async with WSClient.open(url) as client:
        await client.send({"id": "1", "type": "subscribe", "payload": payload})
        reply = await client.receive()

    assert reply["type"] == "error"
    [error] = reply["payload"]
    assert error == {"message": message, "extensions": {"code": "BAD_USER_INPUT"}}


@pytest.fixture
async def url(app: Starlette) -> AsyncIterator[str]:
    async with serve(app) as url:
        yield url


async def test_the_allow_list_holds_over_websocket(
    app: Starlette, settings: Settings, tmp_path: Path
) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({hashlib.sha256(QUERY.encode()).hexdigest(): QUERY}))
    async with (
        _live(settings, persisted_queries_file=manifest, persisted_queries_only=True) as url,
        WSClient.open(url) as client,
    ):
        listed = await client.subscribe(QUERY)
        data = await client.next(listed)
        await client.receive()  # complete
        await client.subscribe("{ sessions(first: 1) { totalCount } }")
        refused = await client.receive()

    assert data == {"sessions": {"totalCount": 0}}
    assert refused["type"] == "error"
    assert refused["payload"][0]["extensions"] == {"code": "FORBIDDEN"}


@pytest.mark.postgres_only
async def test_the_request_time_limit_holds_over_websocket(
    app: Starlette, settings: Settings, engine: AsyncEngine
) -> None:
    async with (
        _live(settings, request_timeout_seconds=0.5) as url,
        WSClient.open(url) as client,
        engine.connect() as blocker,
    ):
        await blocker.execute(sa.text("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE"))
        sub = await client.subscribe(QUERY)
        stopped = await client.receive()
        done = await client.receive()
        await blocker.rollback()

    assert stopped["id"] == sub
    [error] = stopped["payload"]["errors"]
    assert error["extensions"] == {
        "code": "QUERY_TOO_COMPLEX",
        "limit": "requestTimeout",
        "maximum": 0.5,
    }
    assert done == {"id": sub, "type": "complete"}


async def test_a_subscription_named_among_several_operations_runs_on(
    app: Starlette, settings: Settings
) -> None:
    # Given a document of several operations, the first a subscription, sent with its
    # operationName: it is a subscription, not held to the time limit of queries.
    # (Without an operationName the document is refused: test_refusals.py.)
    document = (
        'subscription Live { sessionUpdated(id: "s-1") { id status } } query Other { __typename }'
    )
    start = (
        'mutation { startSession(input: {id: "s-1", startedAt: "2026-04-18T08:00:00Z"}) { id } }'
    )
    async with (
        _live(settings, request_timeout_seconds=0.3) as url,
        WSClient.open(url) as client,
    ):
        sub = await client.subscribe(document, operation_name="Live")
        await client.nothing(within=0.6)  # past the limit, and no time-out error
        mutation = await client.subscribe(start)
        # the mutation's result and end, and the event, in whichever order they come
        messages = [await client.receive() for _ in range(3)]

    assert {(m["id"], m["type"]) for m in messages} == {
        (mutation, "next"),
        (mutation, "complete"),
        (sub, "next"),
    }
    [event] = [m["payload"]["data"] for m in messages if m["id"] == sub]
    assert event == {"sessionUpdated": {"id": "s-1", "status": "RUNNING"}}


async def test_a_fragment_bomb_inside_operations_is_answered(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    await insert_session(engine, id="s-1")
    fragments = ["fragment F20 on Operation { operationType toolOutput }"]
    for n in range(19, -1, -1):
        fragments.append(f"fragment F{n} on Operation {{ {' '.join([f'...F{n + 1}'] * 4)} }}")
    query = (
        "{ sessions { nodes { ...S operations { nodes { ...F0 } } } } } "
        "fragment S on Session { ...T ...T ...T } fragment T on Session { operationCount } "
        + " ".join(fragments)
    )

    body = await gql.raw(query)

    assert body["data"] == {
        "sessions": {"nodes": [{"operationCount": 0, "operations": {"nodes": []}}]}
    }
