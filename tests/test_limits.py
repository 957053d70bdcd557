"""Limits before execution: each just under and just over its threshold, and the cost report."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from graphql import get_introspection_query
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from sessiongraph.app import create_app
from sessiongraph.config import Settings
from tests.conftest import Configured
from tests.helpers import GraphQLClient, SqlRecorder, cost
from tests.live import WSClient, serve

BFF = """query ($sessions: Int, $operations: Int) {
  sessions(first: $sessions) { nodes { workflowName operationCount
    operations(first: $operations) { nodes { operationType toolName timestamp success
      durationSeconds operationId } } } } }"""
DEEP_7 = "{ sessions { edges { node { operations { edges { node { gitSha } } } } } } }"
DEEP_8 = "{ sessions { edges { node { operations { edges { node { git { sha } } } } } } } }"


def tokens(count: int) -> str:
    """A valid document of exactly ``count`` tokens."""
    statuses = " ".join(["RUNNING"] * (count - 12))
    return f"{{ sessions(statuses: [{statuses}]) {{ totalCount }} }}"


def aliased(count: int) -> str:
    return "{ " + " ".join(f"a{n}: sessions {{ totalCount }}" for n in range(count)) + " }"


def directed(count: int) -> str:
    spreads = " ".join(["...F @include(if: true)"] * count)
    return f"{{ sessions {{ {spreads} }} }} fragment F on SessionConnection {{ totalCount }}"


def assert_too_complex(body: dict[str, Any], limit: str, maximum: int, requested: int) -> None:
    assert body["data"] is None, body
    assert "extensions" not in body, body  # no cost for a refused query
    [error] = body["errors"]
    assert error["extensions"] == {
        "code": "QUERY_TOO_COMPLEX",
        "limit": limit,
        "maximum": maximum,
        "requested": requested,
    }


async def test_the_bff_query_fits_the_default_budget_and_reports_its_cost(
    gql: GraphQLClient,
) -> None:
    body = await gql.raw(BFF, {"sessions": 200, "operations": 50})

    assert "errors" not in body
    assert body["extensions"] == cost(200 + 200 * 50)


async def test_200_sessions_with_1000_operations_each_is_refused_before_any_sql(
    gql: GraphQLClient, sql: SqlRecorder
) -> None:
    body = await gql.raw(BFF, {"sessions": 200, "operations": 1000})

    assert_too_complex(body, "costBudget", 50_000, 200 + 200 * 1000)
    assert sql.statements == []


async def test_the_named_operation_is_the_one_measured(
    http: httpx.AsyncClient, sql: SqlRecorder
) -> None:
    two = f"query Big {BFF.removeprefix('query ')} query Small {{ __typename }}"
    variables = {"sessions": 200, "operations": 1000}

    unnamed = await http.post("/graphql", json={"query": two, "variables": variables})
    big = (
        await http.post(
            "/graphql", json={"query": two, "variables": variables, "operationName": "Big"}
        )
    ).json()
    small = (
        await http.post(
            "/graphql", json={"query": two, "variables": variables, "operationName": "Small"}
        )
    ).json()

    # without a name, a document of several operations runs none (test_refusals.py)
    assert unnamed.status_code == 400
    assert unnamed.json()["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT"}
    assert_too_complex(big, "costBudget", 50_000, 200 + 200 * 1000)
    assert sql.statements == []
    assert small == {"data": {"__typename": "Query"}, "extensions": cost(0)}


@pytest.mark.parametrize(
    ("query", "variables", "nodes"),
    [
        pytest.param('{ session(id: "x") { id } }', {}, 1, id="one-session"),
        pytest.param("{ sessions { totalCount } }", {}, 50, id="default-page"),
        pytest.param(
            '{ session(id: "x") { operations { totalCount } } }', {}, 1 + 100, id="timeline"
        ),
        pytest.param(
            """{ sessions(first: 10) { edges { node { operations(first: 5) { nodes { git
                 { sha } } } } } commits: nodes { operations(first: 2) { totalCount } } } }""",
            {},
            10 + 10 * 5 + 10 * 2,
            id="aliases-and-edges",
        ),
        pytest.param(
            "query ($n: Int) { sessions(first: $n) { ...S } } "
            "fragment S on SessionConnection { nodes { operations(first: 3) { totalCount } } }",
            {"n": 7},
            7 + 7 * 3,
            id="fragment-and-variable",
        ),
    ],
)
async def test_cost_counts_the_nodes_each_connection_may_return(
    gql: GraphQLClient, query: str, variables: dict[str, Any], nodes: int
) -> None:
    body = await gql.raw(query, variables)

    assert "errors" not in body, body
    assert body["extensions"] == cost(nodes)


@pytest.mark.parametrize(("budget", "accepted"), [(10_200, True), (10_199, False)])
async def test_cost_budget_edge(configured: Configured, budget: int, accepted: bool) -> None:
    async with configured(cost_budget=budget) as http:
        body = await GraphQLClient(http).raw(BFF, {"sessions": 200, "operations": 50})

    if accepted:
        assert body["extensions"] == cost(10_200, budget=budget)
    else:
        assert_too_complex(body, "costBudget", budget, 10_200)


@pytest.mark.parametrize(("query", "depth"), [(DEEP_7, 7), (DEEP_8, 8)])
async def test_depth_limit_edge(configured: Configured, query: str, depth: int) -> None:
    async with configured(max_depth=7) as http:
        body = await GraphQLClient(http).raw(query)

    if depth <= 7:
        assert "errors" not in body, body
    else:
        assert_too_complex(body, "maxDepth", 7, 8)


async def test_the_deepest_readme_query_fits_the_default_depth(gql: GraphQLClient) -> None:
    body = await gql.raw(DEEP_8)

    assert "errors" not in body, body


async def test_graphiql_introspection_passes_the_default_limits(gql: GraphQLClient) -> None:
    body = await gql.raw(get_introspection_query(descriptions=True))

    assert "errors" not in body, body
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"


@pytest.mark.parametrize(("count", "accepted"), [(15, True), (16, False)])
async def test_alias_limit_edge(gql: GraphQLClient, count: int, accepted: bool) -> None:
    body = await gql.raw(aliased(count))

    if accepted:
        assert "errors" not in body, body
    else:
        assert_too_complex(body, "maxAliases", 15, 16)


@pytest.mark.parametrize(("count", "accepted"), [(50, True), (51, False)])
async def test_directive_limit_edge(gql: GraphQLClient, count: int, accepted: bool) -> None:
    body = await gql.raw(directed(count))

    if accepted:
        assert "errors" not in body, body
    else:
        assert_too_complex(body, "maxDirectives", 50, 51)


@pytest.mark.parametrize(("count", "accepted"), [(1000, True), (1001, False)])
async def test_token_limit_edge(gql: GraphQLClient, count: int, accepted: bool) -> None:
    body = await gql.raw(tokens(count))

    if accepted:
        assert "errors" not in body, body
    else:
        assert body["data"] is None
        [error] = body["errors"]
        assert error["extensions"] == {
            "code": "QUERY_TOO_COMPLEX",
            "limit": "maxTokens",
            "maximum": 1000,
        }


@pytest.mark.parametrize(("size", "status"), [(4096, 200), (4097, 413)])
async def test_body_size_limit_edge(configured: Configured, size: int, status: int) -> None:
    query = "{ sessions { totalCount } }"
    body = b'{"query": "' + query.encode() + b'"}'
    padded = body[:-1] + b" " * (size - len(body)) + b"}"
    assert len(padded) == size

    async with configured(max_body_bytes=4096) as http:
        response = await http.post(
            "/graphql", content=padded, headers={"content-type": "application/json"}
        )

    assert response.status_code == status
    if status == 413:
        [error] = response.json()["errors"]
        assert error["extensions"] == {
            "code": "QUERY_TOO_COMPLEX",
            "limit": "maxBodyBytes",
            "maximum": 4096,
        }


async def test_a_body_without_content_length_is_counted_as_it_arrives(
    configured: Configured,
) -> None:
    async def chunks() -> Any:
        for _ in range(10):
            yield b" " * 1000
        yield b'{"query": "{ sessions { totalCount } }"}'

    async with configured(max_body_bytes=4096) as http:
        response = await http.post(
            "/graphql", content=chunks(), headers={"content-type": "application/json"}
        )

    assert response.status_code == 413


async def test_a_document_too_costly_to_validate_is_refused(gql: GraphQLClient) -> None:
    # 995 times the same field: checking that they merge is quadratic work.
    body = await gql.raw("{ sessions { " + " ".join(["totalCount"] * 995) + " } }")

    [error] = body["errors"]
    assert error["extensions"] == {"code": "QUERY_TOO_COMPLEX", "limit": "validationComplexity"}


async def test_batching_is_off_by_default(http: httpx.AsyncClient) -> None:
    response = await http.post("/graphql", json=[{"query": "{ sessions { totalCount } }"}])

    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}


@pytest.mark.parametrize(("count", "status"), [(3, 200), (4, 400)])
async def test_batch_size_limit_edge(configured: Configured, count: int, status: int) -> None:
    batch = [{"query": "{ sessions { totalCount } }"}] * count

    async with configured(batching=True, max_batch_operations=3) as http:
        response = await http.post("/graphql", json=batch)

    assert response.status_code == status
    if status == 200:
        assert (
            response.json()
            == [{"data": {"sessions": {"totalCount": 0}}, "extensions": cost(50)}] * count
        )
    else:
        [error] = response.json()["errors"]
        assert error["extensions"] == {
            "code": "QUERY_TOO_COMPLEX",
            "limit": "maxBatchOperations",
            "maximum": 3,
            "requested": 4,
        }


@pytest.mark.postgres_only
async def test_request_time_limit_stops_the_request_and_frees_the_connection(
    configured: Configured, engine: AsyncEngine
) -> None:
    # A lock makes the request's statement wait; the request gives up at 0.5 s, well
    # before the 5 s statement timeout.
    async with (
        configured(request_timeout_seconds=0.5, pool_size=1, max_overflow=0) as http,
        engine.connect() as blocker,
    ):
        await blocker.execute(sa.text("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE"))
        response = await http.post("/graphql", json={"query": "{ sessions { totalCount } }"})
        await blocker.rollback()
        after = await http.post("/graphql", json={"query": "{ sessions { totalCount } }"})

    [error] = response.json()["errors"]
    assert error["extensions"] == {
        "code": "QUERY_TOO_COMPLEX",
        "limit": "requestTimeout",
        "maximum": 0.5,
    }
    assert after.json()["data"] == {"sessions": {"totalCount": 0}}


async def test_a_subscription_over_budget_is_refused(app: Starlette, settings: Settings) -> None:
    limited = create_app(settings.model_copy(update={"cost_budget": 10}))
    async with (
        limited.router.lifespan_context(limited),
        serve(limited) as url,
        WSClient.open(url) as client,
    ):
        sub = await client.subscribe(
            "subscription { sessionsChanged { session { operations(first: 20) { totalCount } } } }"
        )
        reply = await client.receive()

    assert reply["id"] == sub
    assert reply["type"] == "error"
    [error] = reply["payload"]
    assert error["extensions"] == {
        "code": "QUERY_TOO_COMPLEX",
        "limit": "costBudget",
        "maximum": 10,
        "requested": 21,
    }


@pytest.mark.parametrize(
    ("operations", "status"),
    [
        pytest.param(2, 200, id="two-within-the-budget-together"),
        pytest.param(3, 400, id="three-over-it-together"),
        pytest.param(10, 400, id="ten-each-within-it"),
    ],
)
async def test_the_cost_budget_is_the_whole_batchs(
    settings: Settings, app: Starlette, operations: int, status: int
) -> None:
    # Given operations each within the budget (20,100 of 50,000 nodes)
    query = "{ sessions(first: 100) { nodes { operations(first: 200) { totalCount } } } }"
    batch = [{"query": query}] * operations
    other = create_app(settings.model_copy(update={"batching": True}))
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    async with other.router.lifespan_context(other):
        sa.event.listen(other.state.engine.sync_engine, "before_cursor_execute", record)
        transport = httpx.ASGITransport(app=other)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            response = await http.post("/graphql", json=batch)

    assert response.status_code == status, response.text
    if status == 200:
        assert (
            response.json()
            == [{"data": {"sessions": {"nodes": []}}, "extensions": cost(20_100)}] * operations
        )
        return
    # Then the batch is refused as a whole, before any SQL
    assert_too_complex(response.json(), "costBudget", 50_000, 20_100 * operations)
    assert statements == []
