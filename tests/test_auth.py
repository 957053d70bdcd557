"""Bearer tokens on HTTP and WebSocket, read-only tokens, and CORS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from websockets.exceptions import ConnectionClosed

from sessiongraph.app import create_app
from sessiongraph.config import Settings, token_digest
from tests.conftest import Configured
from tests.live import WSClient, serve

WRITER = "writer-token-0123456789"
READER = "reader-token-0123456789"
TOKENS = {
    "token_sha256": [token_digest(WRITER)],
    "read_only_token_sha256": [token_digest(READER)],
}
QUERY = {"query": "{ sessions { totalCount } }"}
START = {"query": 'mutation { startSession(input: {id: "s-auth"}) { id } }'}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_without_tokens_configured_everyone_reads_and_writes(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post("/graphql", json=START)

    assert response.json()["data"] == {"startSession": {"id": "s-auth"}}


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="none"),
        pytest.param(bearer("wrong-token"), id="wrong"),
        pytest.param({"Authorization": WRITER}, id="no-scheme"),
        pytest.param({"Authorization": f"Basic {WRITER}"}, id="other-scheme"),
        pytest.param({"Authorization": "Bearer "}, id="empty"),
        pytest.param(bearer(token_digest(WRITER)), id="the-digest-itself"),
    ],
)
async def test_a_request_without_a_valid_token_is_401(
    configured: Configured, headers: dict[str, str]
) -> None:
    async with configured(**TOKENS) as http:
        response = await http.post("/graphql", json=QUERY, headers=headers)
        health = await http.get("/healthz")

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "UNAUTHENTICATED"}
    assert health.status_code == 200  # load balancers need no token


@pytest.mark.parametrize("token", [WRITER, READER])
async def test_either_token_reads(configured: Configured, token: str) -> None:
    async with configured(**TOKENS) as http:
        post = await http.post("/graphql", json=QUERY, headers=bearer(token))
        get = await http.get("/graphql", params=QUERY, headers=bearer(token))

    assert post.json()["data"] == {"sessions": {"totalCount": 0}}
    assert get.json()["data"] == {"sessions": {"totalCount": 0}}


async def test_a_read_only_token_cannot_run_mutations(configured: Configured) -> None:
    async with configured(**TOKENS) as http:
        refused = await http.post("/graphql", json=START, headers=bearer(READER))
        count = await http.post("/graphql", json=QUERY, headers=bearer(WRITER))
        allowed = await http.post("/graphql", json=START, headers=bearer(WRITER))

    assert refused.status_code == 200
    assert refused.json()["data"] is None
    [error] = refused.json()["errors"]
    assert error["extensions"] == {"code": "FORBIDDEN"}
    assert count.json()["data"] == {"sessions": {"totalCount": 0}}  # nothing was written
    assert allowed.json()["data"] == {"startSession": {"id": "s-auth"}}


def test_tokens_must_be_configured_as_digests() -> None:
    with pytest.raises(ValidationError, match="hash-token"):
        Settings(token_sha256=["my-plain-secret"])


def test_digests_may_be_given_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "SESSIONGRAPH_TOKEN_SHA256", f" {token_digest('a')} ,{token_digest('b').upper()}"
    )

    assert Settings().token_sha256 == [token_digest("a"), token_digest("b")]


@asynccontextmanager
async def _secured(settings: Settings) -> AsyncIterator[str]:
    secured = create_app(settings.model_copy(update=TOKENS))
    async with secured.router.lifespan_context(secured), serve(secured) as url:
        yield url


async def test_a_websocket_without_a_token_is_closed_at_connection_init(
    app: Starlette, settings: Settings
) -> None:
    async with _secured(settings) as url, WSClient.open(url, init=False) as client:
        await client.send({"type": "connection_init", "payload": {}})
        with pytest.raises(ConnectionClosed) as closed:
            await client.receive()

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


@pytest.mark.parametrize(
    "payload",
    [{"Authorization": f"Bearer {WRITER}"}, {"authToken": WRITER}],
    ids=["authorization", "authToken"],
)
async def test_a_websocket_token_in_connection_init_is_accepted(
    app: Starlette, settings: Settings, payload: dict[str, str]
) -> None:
    async with _secured(settings) as url, WSClient.open(url, init=False) as client:
        await client.send({"type": "connection_init", "payload": payload})
        ack = await client.receive()
        sub = await client.subscribe(QUERY["query"])
        data = await client.next(sub)

    assert ack["type"] == "connection_ack"
    assert data == {"sessions": {"totalCount": 0}}


async def test_a_websocket_token_on_the_upgrade_request_is_accepted(
    app: Starlette, settings: Settings
) -> None:
    async with (
        _secured(settings) as url,
        WSClient.open(url, additional_headers=bearer(READER)) as client,
    ):
        sub = await client.subscribe(START["query"])
        refused = await client.receive()

    assert refused["id"] == sub
    assert refused["type"] == "error"
    [error] = refused["payload"]
    assert error["extensions"] == {"code": "FORBIDDEN"}


async def test_cors_is_off_unless_origins_are_configured(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/graphql", json=QUERY, headers={"Origin": "https://dashboard.example"}
    )

    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [("https://dashboard.example", True), ("https://evil.example", False)],
)
async def test_cors_admits_only_the_configured_origins(
    configured: Configured, origin: str, allowed: bool
) -> None:
    preflight_headers = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    async with configured(cors_origins=["https://dashboard.example"], **TOKENS) as http:
        preflight = await http.options("/graphql", headers=preflight_headers)
        actual = await http.post(
            "/graphql", json=QUERY, headers={"Origin": origin, **bearer(WRITER)}
        )

    if allowed:
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == origin
        assert actual.headers["access-control-allow-origin"] == origin
    else:
        assert preflight.status_code == 400
        assert "access-control-allow-origin" not in actual.headers
