"""application/graphql-response+json, as the GraphQL-over-HTTP spec has it: honoured
when the client accepts it, with 4xx for requests refused before they run, while
application/json stays the default, with 200 for every result of a valid request."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sessiongraph.config import token_digest
from sessiongraph.media import answer_type
from tests.conftest import Configured

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


@pytest.mark.parametrize(
    ("accept", "answered"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        (JSON, JSON),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}, {JSON};q=0.9", GRAPHQL_RESPONSE),  # Apollo Client 4
        (f"{GRAPHQL_RESPONSE}, {JSON}, multipart/mixed", GRAPHQL_RESPONSE),
        (f"{JSON}, multipart/mixed", JSON),  # GraphiQL's fetcher
        (f"{JSON}, {GRAPHQL_RESPONSE};q=0.5", JSON),
        (f"{GRAPHQL_RESPONSE};q=0", JSON),
        ("text/html", JSON),
        ("Application/GraphQL-Response+JSON; charset=utf-8", GRAPHQL_RESPONSE),
    ],
)
def test_the_answer_type_follows_the_accept_header(accept: str | None, answered: str) -> None:
    assert answer_type(accept) == answered


async def post(http: httpx.AsyncClient, accept: str | None, body: Any) -> httpx.Response:
    headers = {"Accept": accept} if accept else {}
    return await http.post("/graphql", json=body, headers=headers)


@pytest.mark.parametrize(
    "query",
    [
        "{ sessions(first: 1) { totalCount ",  # does not parse
        "{ sessions(first: 1) { nope } }",  # does not validate
        "query Q($n: Int!) { sessions(first: $n) { totalCount } }",  # $n not given
    ],
)
@pytest.mark.parametrize("way", ["lean", "plain"])
async def test_a_request_refused_before_it_runs_is_a_400_without_data(
    http: httpx.AsyncClient, plain_http: httpx.AsyncClient, query: str, way: str
) -> None:
    # given the short way through the view, or Strawberry's own
    http = http if way == "lean" else plain_http

    # when the client accepts application/graphql-response+json
    response = await post(http, GRAPHQL_RESPONSE, {"query": query})

    # then it is answered with it, a 400, and no data entry
    assert response.status_code == 400
    assert response.headers["content-type"] == GRAPHQL_RESPONSE
    assert response.headers["vary"] == "Accept"
    body = response.json()
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"

    # and a client accepting application/json (or saying nothing) gets a 200 with data null
    for accept in (JSON, None):
        legacy = await post(http, accept, {"query": query})
        assert legacy.status_code == 200
        assert legacy.headers["content-type"] == JSON
        assert legacy.json()["data"] is None
        assert legacy.json()["errors"] == body["errors"]


async def test_a_limit_is_a_400_and_a_field_error_a_200(http: httpx.AsyncClient) -> None:
    # a query over the cost budget is refused before it runs
    costly = "{ sessions(first: 200) { nodes { operations(first: 1000) { totalCount } } } }"
    refused = await post(http, GRAPHQL_RESPONSE, {"query": costly})
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"

    # an error at a field is part of a result: 200, with its data entry
    result = await post(http, GRAPHQL_RESPONSE, {"query": '{ session(id: "") { id } }'})
    assert result.status_code == 200
    assert result.headers["content-type"] == GRAPHQL_RESPONSE
    assert result.json()["data"] == {"session": None}
    assert result.json()["errors"][0]["path"] == ["session"]

    # and a result without errors, too
    fine = await post(http, GRAPHQL_RESPONSE, {"query": "{ sessions(first: 1) { totalCount } }"})
    assert fine.status_code == 200
    assert fine.json()["data"] == {"sessions": {"totalCount": 0}}


@pytest.mark.parametrize(
    ("method", "content", "status"),
    [
        ("PUT", None, 405),
        ("POST", b"query=%7B%7D", 415),
        ("POST", b"{not json", 400),
        ("POST", b'{"query": "subscription { sessionsChanged { kind } }"}', 400),
    ],
)
async def test_refusals_before_graphql_honour_the_accept_header(
    http: httpx.AsyncClient, method: str, content: bytes | None, status: int
) -> None:
    content_type = "application/x-www-form-urlencoded" if status == 415 else JSON
    for accept, data in ((GRAPHQL_RESPONSE, False), (JSON, True), ("*/*", True)):
        response = await http.request(
            method,
            "/graphql",
            content=content,
            headers={"Accept": accept, "Content-Type": content_type},
        )
        assert response.status_code == status
        answered = GRAPHQL_RESPONSE if not data else JSON
        assert response.headers["content-type"] == answered
        assert int(response.headers["content-length"]) == len(response.content)
        body = response.json()
        assert ("data" in body) is data
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_mutation_over_get_is_a_405_in_either_type(http: httpx.AsyncClient) -> None:
    params = {"query": "mutation { startSession(input: {}) { id } }"}
    for accept in (GRAPHQL_RESPONSE, JSON):
        response = await http.get("/graphql", params=params, headers={"Accept": accept})
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"
        assert response.headers["content-type"] == accept


async def test_no_token_is_a_401_and_a_read_only_token_s_mutation_a_403(
    configured: Configured,
) -> None:
    writer, reader = "writer-token-0123456789", "reader-token-0123456789"
    tokens = {
        "token_sha256": [token_digest(writer)],
        "read_only_token_sha256": [token_digest(reader)],
    }
    mutation = {"query": 'mutation { startSession(input: { id: "m" }) { id } }'}
    async with configured(**tokens) as http:
        anonymous = await post(http, GRAPHQL_RESPONSE, mutation)
        http.headers["Authorization"] = f"Bearer {reader}"
        forbidden = await post(http, GRAPHQL_RESPONSE, mutation)
        legacy = await post(http, JSON, mutation)

    assert anonymous.status_code == 401
    assert "data" not in anonymous.json()
    assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"] == GRAPHQL_RESPONSE
    assert "data" not in forbidden.json()
    assert forbidden.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (legacy.status_code, legacy.json()["data"]) == (200, None)


async def test_an_unknown_persisted_query_stays_a_200_with_data_null(
    http: httpx.AsyncClient,
) -> None:
    # a step of the persisted-query exchange (the client sends the query next), not a
    # refusal: Apollo's link retries on it whatever the status
    hashed = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "a" * 64}}}
    response = await post(http, GRAPHQL_RESPONSE, hashed)

    assert response.status_code == 200
    assert response.headers["content-type"] == GRAPHQL_RESPONSE
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
