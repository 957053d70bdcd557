"""Slow clients and many connections, against a real uvicorn with `serve`'s protocol:
headers and bodies must arrive in bounded time, and a process serves a bounded number
of connections. Raw sockets, so the client can be as slow as it likes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from sessiongraph import serving
from sessiongraph.config import Settings
from tests.live import WSClient, serve

START = 'mutation { startSession(input: {id: "s-1", startedAt: "2026-04-18T08:00:00Z"}) { id } }'
Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Server = Callable[..., AbstractAsyncContextManager[int]]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """What a slow client meets is the protocol's, whatever the database: SQLite only."""
    return Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")


@pytest.fixture
def server(app: Starlette, settings: Settings) -> Server:
    """Serves the app with `serve`'s protocol and these settings changed; yields its port."""

    @asynccontextmanager
    async def served(**changes: Any) -> AsyncIterator[int]:
        limits = settings.model_copy(update=changes)
        async with serve(app, http=serving.protocol(limits)) as url:
            yield int(url.split(":")[2].split("/")[0])

    return served


async def connect(port: int) -> Streams:
    return await asyncio.open_connection("127.0.0.1", port)


def request_head(method: str = "POST", length: int | None = None, path: str = "/graphql") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if length is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {length}\r\n"
    return (head + "\r\n").encode()


async def response_of(
    reader: asyncio.StreamReader, within: float = 5
) -> tuple[int, dict[str, str], bytes]:
    """The next response: status, headers (lower-case names), body."""
    async with asyncio.timeout(within):
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        status_line, *lines = head.strip().split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines)
        body = await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, body


async def closed(reader: asyncio.StreamReader, within: float = 5) -> bool:
    """Whether the server closes the connection within ``within`` seconds (sending nothing more)."""
    try:
        async with asyncio.timeout(within):
            return await reader.read() == b""
    except TimeoutError:
        return False


def error_of(body: bytes) -> dict[str, Any]:
    [error] = json.loads(body)["errors"]
    return dict(error)


async def stored_sessions(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        count: int = (await conn.execute(sa.text("SELECT count(*) FROM sessions"))).scalar_one()
        return count


async def test_headers_sent_too_slowly_get_a_408_and_the_connection_closes(
    server: Server,
) -> None:
    async def trickle(writer: asyncio.StreamWriter) -> None:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for n in range(100):  # a header every 0.1 s, never the end of them
            await asyncio.sleep(0.1)
            writer.write(f"X-Slow-{n}: 1\r\n".encode())

    async with server(header_timeout_seconds=0.5) as port:
        reader, writer = await connect(port)
        started = time.monotonic()
        slow = asyncio.create_task(trickle(writer))
        status, headers, body = await response_of(reader)
        elapsed = time.monotonic() - started
        assert await closed(reader)
        slow.cancel()
        writer.close()

    assert status == 408
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert error_of(body)["extensions"] == {"code": "BAD_USER_INPUT"}
    assert 0.4 < elapsed < 2


async def test_a_connection_that_sends_nothing_is_closed(server: Server) -> None:
    async with server(header_timeout_seconds=0.3) as port:
        reader, writer = await connect(port)

        # nothing asked, nothing answered: closed
        assert await closed(reader, within=3)
        writer.close()


async def test_a_later_request_on_the_connection_gets_the_header_time_again(
    server: Server,
) -> None:
    async with server(header_timeout_seconds=0.5) as port:
        reader, writer = await connect(port)
        await asyncio.sleep(0.3)
        writer.write(request_head("GET", path="/healthz"))
        first, _, _ = await response_of(reader)
        await asyncio.sleep(0.3)  # past the first request's header time, counted afresh
        writer.write(request_head("GET", path="/healthz"))
        second, _, _ = await response_of(reader)
        writer.write(b"GET /healthz HTTP/1.1\r\n")  # and a third, left unfinished
        third, _, _ = await response_of(reader)
        writer.close()

    assert (first, second, third) == (200, 200, 408)


async def test_a_body_sent_too_slowly_gets_a_408_and_runs_nothing(
    server: Server, engine: AsyncEngine
) -> None:
    # Given a body whose first part is a whole mutation, and the rest never comes
    body = json.dumps({"query": START}).encode()

    async with server(body_timeout_seconds=0.5) as port:
        reader, writer = await connect(port)
        writer.write(request_head(length=len(body) + 100) + body)
        started = time.monotonic()
        status, _, answer = await response_of(reader)
        elapsed = time.monotonic() - started
        assert await closed(reader)
        writer.close()

    assert status == 408
    assert error_of(answer)["extensions"] == {"code": "BAD_USER_INPUT"}
    assert 0.4 < elapsed < 2
    assert await stored_sessions(engine) == 0


async def test_a_body_cut_short_by_the_client_runs_nothing(
    server: Server, engine: AsyncEngine
) -> None:
    body = json.dumps({"query": START}).encode()

    async with server() as port:
        _reader, writer = await connect(port)
        writer.write(request_head(length=len(body) + 100) + body)
        await asyncio.sleep(0.2)
        writer.close()  # gone before the rest of the body
        await asyncio.sleep(0.3)

    assert await stored_sessions(engine) == 0


async def test_a_body_in_parts_within_the_time_is_served(server: Server) -> None:
    body = json.dumps({"query": "{ __typename }"}).encode()

    async with server(body_timeout_seconds=1) as port:
        reader, writer = await connect(port)
        writer.write(request_head(length=len(body)) + body[:10])
        await asyncio.sleep(0.3)
        writer.write(body[10:])
        status, _, answer = await response_of(reader)
        writer.close()

    assert status == 200
    assert json.loads(answer)["data"] == {"__typename": "Query"}


async def test_connections_beyond_the_cap_get_a_503_and_are_closed(server: Server) -> None:
    async with server(max_connections=3) as port:
        held = [await connect(port) for _ in range(3)]
        reader, writer = await connect(port)
        writer.write(request_head("GET", path="/healthz"))
        status, headers, body = await response_of(reader)
        assert await closed(reader)
        writer.close()
        # one of the three goes: a new connection is served
        held.pop()[1].close()
        await asyncio.sleep(0.1)
        reader, writer = await connect(port)
        writer.write(request_head("GET", path="/healthz"))
        after, _, _ = await response_of(reader)
        # and those within the cap were served all along
        first_reader, first_writer = held[0]
        first_writer.write(request_head("GET", path="/healthz"))
        within, _, _ = await response_of(first_reader)
        for _, w in [*held, (reader, writer)]:
            w.close()

    assert status == 503
    assert headers["retry-after"] == "1"
    assert headers["content-type"] == "application/json"
    assert error_of(body)["extensions"] == {"code": "UNAVAILABLE", "retryAfterSeconds": 1}
    assert (after, within) == (200, 200)


async def test_a_websocket_beyond_the_cap_is_refused(server: Server) -> None:
    async with server(max_connections=1) as port:
        held = await connect(port)
        reader, writer = await connect(port)
        writer.write(
            b"GET /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
        )
        status, headers, body = await response_of(reader)
        writer.close()
        held[1].close()

    assert status == 503
    assert headers["retry-after"] == "1"
    assert error_of(body)["extensions"]["code"] == "UNAVAILABLE"


async def test_a_websocket_outlives_the_request_time_bounds(server: Server) -> None:
    async with (
        server(header_timeout_seconds=0.3, body_timeout_seconds=0.3) as port,
        WSClient.open(f"ws://127.0.0.1:{port}/graphql") as ws,
    ):
        await asyncio.sleep(0.8)
        operation = await ws.subscribe("{ __typename }")
        data = await ws.next(operation)

    assert data == {"__typename": "Query"}
