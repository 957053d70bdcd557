"""The HTTP surface: GET and POST, malformed requests, and errors that never leak internals."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import GraphQLClient, cost, destroy_database_files, insert_session


async def test_get_runs_a_query(http: httpx.AsyncClient, engine: AsyncEngine) -> None:
    session = await insert_session(engine)

    response = await http.get("/graphql", params={"query": "{ sessions { nodes { id } } }"})

    assert response.status_code == 200
    assert response.json() == {
        "data": {"sessions": {"nodes": [{"id": session["id"]}]}},
        "extensions": cost(50),
    }


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        pytest.param(b"{not json", "application/json", id="broken-json"),
        pytest.param(b"{}", "application/json", id="no-query"),
        pytest.param(
            b'{"query": "{ sessions { totalCount } }", "variables": 3}',
            "application/json",
            id="bad-variables",
        ),
        pytest.param(b"{ sessions { totalCount } }", "text/plain", id="unsupported-type"),
    ],
)
async def test_malformed_requests_get_a_4xx(
    http: httpx.AsyncClient, content: bytes, content_type: str
) -> None:
    response = await http.post("/graphql", content=content, headers={"content-type": content_type})

    assert 400 <= response.status_code < 500
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("{ sessions { ", id="syntax"),
        pytest.param("{ sessions { bogus } }", id="unknown-field"),
        pytest.param("{ sessions(first: 99999999999) { totalCount } }", id="int-overflow"),
        pytest.param("{ session(id: 5) { id } }", id="wrong-type"),
        pytest.param("{ session { id } }", id="missing-argument"),
    ],
)
async def test_invalid_documents_are_bad_user_input(gql: GraphQLClient, query: str) -> None:
    error = await gql.error(query, code="BAD_USER_INPUT")

    assert "path" not in error


async def test_wrongly_typed_variable_is_bad_user_input(gql: GraphQLClient) -> None:
    error = await gql.error(
        "query ($first: Int) { sessions(first: $first) { totalCount } }",
        {"first": "ten"},
        code="BAD_USER_INPUT",
    )

    assert "$first" in error["message"]


@pytest.mark.sqlite_only
async def test_database_failure_is_masked_as_internal(
    gql: GraphQLClient, engine: AsyncEngine, tmp_path: Path
) -> None:
    # Given a session, then a database file destroyed under the running server
    await insert_session(engine)
    destroy_database_files(tmp_path)

    # When a query needs the database
    body = await gql.raw("{ sessions { totalCount nodes { id } } }")

    # Then the client learns only that something failed inside
    assert body["data"] is None
    [error] = body["errors"]
    assert error["message"] == "Internal server error"
    assert error["extensions"] == {"code": "INTERNAL"}
    assert error["path"] == ["sessions"]
    assert "SELECT" not in str(body)


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_subscription_over_plain_http_is_refused(
    http: httpx.AsyncClient, method: str
) -> None:
    query = 'subscription { sessionUpdated(id: "s-1") { id } }'

    if method == "GET":
        response = await http.get("/graphql", params={"query": query})
    else:
        response = await http.post("/graphql", json={"query": query})

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}
    assert "WebSocket" in error["message"]
