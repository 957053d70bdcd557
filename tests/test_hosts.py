"""DNS rebinding: a request (or WebSocket) naming a host the server is not meant to be
reached by is refused before anything runs, whatever its Origin says."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from sessiongraph.app import create_app
from sessiongraph.config import Settings
from sessiongraph.hosts import host_name, is_loopback
from tests.live import PROTOCOL, serve

START = 'mutation { startSession(input: {id: "s-1", startedAt: "2026-04-18T08:00:00Z"}) { id } }'
EVIL = "rebound.example"

Client = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def client(settings: Settings, app: Starlette) -> Client:
    """A client of an app on the test's database that listens on ``listening_on``, with
    settings changed; its requests arrive at ``server`` (the address of the URL)."""

    @asynccontextmanager
    async def open_client(
        listening_on: str | None, server: str = "127.0.0.1", **changes: Any
    ) -> AsyncIterator[httpx.AsyncClient]:
        other = create_app(settings.model_copy(update=changes), listening_on=listening_on)
        async with other.router.lifespan_context(other):
            transport = httpx.ASGITransport(app=other)
            async with httpx.AsyncClient(transport=transport, base_url=f"http://{server}") as c:
                yield c

    return open_client


async def stored_sessions(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        count: int = (await conn.execute(sa.text("SELECT count(*) FROM sessions"))).scalar_one()
        return count


def refused(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "SESSIONGRAPH_ALLOWED_HOSTS" in error["message"]


async def test_a_rebound_mutation_on_a_loopback_server_is_refused(
    client: Client, engine: AsyncEngine
) -> None:
    # Given the quick-start setup (loopback, no tokens) and a page of another site whose
    # name now resolves to 127.0.0.1: its Host and Origin both name that site
    headers = {"host": f"{EVIL}:8000", "origin": f"http://{EVIL}:8000"}

    async with client("127.0.0.1") as http:
        response = await http.post("/graphql", json={"query": START}, headers=headers)

    refused(response)
    assert response.json()["errors"][0]["extensions"]["host"] == f"{EVIL}:8000"
    assert await stored_sessions(engine) == 0


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000", "[::1]", "LOCALHOST"]
)
async def test_loopback_names_reach_a_loopback_server(client: Client, host: str) -> None:
    async with client("127.0.0.1") as http:
        response = await http.post(
            "/graphql", json={"query": "{ __typename }"}, headers={"host": host}
        )

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("api.example.com", 200),
        ("API.example.com:443", 200),
        ("a.corp.example", 200),
        ("corp.example", 400),  # *.corp.example is its subdomains
        ("localhost:8000", 200),  # loopback names stay allowed on a loopback server
        ("example.com", 400),
        ("localhost.", 400),
    ],
)
async def test_configured_hosts_reach_a_loopback_server(
    client: Client, host: str, status: int
) -> None:
    allowed = ["api.example.com", "*.corp.example"]

    async with client("localhost", allowed_hosts=allowed) as http:
        response = await http.get(
            "/graphql", params={"query": "{ __typename }"}, headers={"host": host}
        )

    assert response.status_code == status, response.text


async def test_any_host_reaches_a_non_loopback_server_without_a_list_with_a_warning(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="sessiongraph"):
        async with client("0.0.0.0", server="10.1.2.3") as http:
            response = await http.post(
                "/graphql", json={"query": "{ __typename }"}, headers={"host": EVIL}
            )

    assert response.status_code == 200
    [warning] = [r for r in caplog.records if "SESSIONGRAPH_ALLOWED_HOSTS" in r.getMessage()]
    assert "non-loopback" in warning.getMessage()


@pytest.mark.parametrize(
    ("host", "status"), [("api.example.com", 200), (EVIL, 400), ("localhost", 400)]
)
async def test_only_the_list_reaches_a_non_loopback_server_with_one(
    client: Client, caplog: pytest.LogCaptureFixture, host: str, status: int
) -> None:
    with caplog.at_level(logging.WARNING, logger="sessiongraph"):
        async with client("0.0.0.0", allowed_hosts=["api.example.com"]) as http:
            response = await http.post(
                "/graphql", json={"query": "{ __typename }"}, headers={"host": host}
            )

    assert response.status_code == status
    assert not [r for r in caplog.records if "ALLOWED_HOSTS" in r.getMessage()]


@pytest.mark.parametrize(
    ("server", "status"), [("127.0.0.1", 400), ("[::1]", 400), ("10.1.2.3", 200)]
)
async def test_without_the_bound_address_the_connections_address_decides(
    client: Client, server: str, status: int
) -> None:
    # An app served by another command than `serve` does not know what its server binds
    async with client(None, server=server) as http:
        response = await http.post(
            "/graphql", json={"query": "{ __typename }"}, headers={"host": EVIL}
        )

    assert response.status_code == status


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
async def test_probes_answer_any_host(client: Client, path: str) -> None:
    async with client("127.0.0.1") as http:
        response = await http.get(path, headers={"host": "10.0.0.7:8000"})

    assert response.status_code == (200 if path == "/healthz" else 404)


def test_host_names_and_loopback_addresses() -> None:
    assert host_name("Example.COM:8000") == "example.com"
    assert host_name("[::1]:8000") == "::1"
    assert host_name("::1") == "::1"
    assert host_name("127.0.0.1") == "127.0.0.1"
    assert all(is_loopback(a) for a in ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
    assert not any(is_loopback(a) for a in ["0.0.0.0", "::", "10.0.0.1", "example.com", ""])


@pytest.mark.parametrize("value", ["http://example.com", "example.com:8000", "a/b", "::1"])
def test_allowed_hosts_are_host_names(value: str) -> None:
    with pytest.raises(ValueError, match="host names"):
        Settings(allowed_hosts=value)


def test_allowed_hosts_read_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONGRAPH_ALLOWED_HOSTS", "API.example.com, *.corp.example,[::1]")

    assert Settings().allowed_hosts == ["api.example.com", "*.corp.example", "::1"]


async def _handshake(port: int, host: str, origin: str | None) -> str:
    """Opens a WebSocket to 127.0.0.1:``port`` naming ``host`` (as a browser does for a
    name resolved to that address); 'accepted', or the refusal's status and body."""
    sock = socket.socket()
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    try:
        async with connect(
            f"ws://{host}/graphql",
            sock=sock,
            origin=origin,  # type: ignore[arg-type]
            subprotocols=[PROTOCOL],  # type: ignore[list-item]
        ):
            return "accepted"
    except InvalidStatus as refusal:
        return f"{refusal.response.status_code} {bytes(refusal.response.body or b'').decode()}"


async def test_a_rebound_websocket_is_refused_before_it_is_accepted(app: Starlette) -> None:
    async with serve(app) as url:
        port = int(url.split(":")[2].split("/")[0])
        rebound = await _handshake(port, f"{EVIL}:{port}", f"http://{EVIL}:{port}")
        other_origin = await _handshake(port, f"localhost:{port}", f"http://{EVIL}:{port}")
        same_origin = await _handshake(port, f"localhost:{port}", f"http://localhost:{port}")
        no_origin = await _handshake(port, f"127.0.0.1:{port}", None)

    # The Host names the other site: refused, with the error as the handshake's answer
    assert rebound.startswith('400 {"data":null,"errors":[{"message":"This server does not')
    assert "BAD_USER_INPUT" in rebound
    # The Host is this server's: the same-origin check (Origin against Host) decides,
    # and the Origin can no longer name the Host's site without being it
    assert other_origin.startswith("403")
    assert same_origin == "accepted"
    assert no_origin == "accepted"


@pytest.mark.sqlite_only
async def test_a_cross_origin_websocket_is_logged_with_what_applies_here(
    app: Starlette, caplog: pytest.LogCaptureFixture
) -> None:
    async with serve(app) as url:
        port = int(url.split(":")[2].split("/")[0])
        with caplog.at_level(logging.WARNING, logger="strawberry.ws"):
            refused = await _handshake(port, f"localhost:{port}", "https://dashboard.example")

    assert refused.startswith("403")
    [hint] = [r.getMessage() for r in caplog.records if "WebSocket" in r.getMessage()]
    assert "'https://dashboard.example'" in hint
    assert "SESSIONGRAPH_CORS_ORIGINS" in hint
    assert "allowed_origins" not in hint
