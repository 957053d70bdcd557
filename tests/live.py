"""A real server on a loopback port, and a graphql-transport-ws client to talk to it."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect

PROTOCOL = "graphql-transport-ws"


@asynccontextmanager
async def serve(app: Starlette, **options: Any) -> AsyncIterator[str]:
    """Serve ``app`` (its lifespan already running) with uvicorn, with these config
    ``options``; yields its ws:// URL."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="off", log_level="warning", **options
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/graphql"
    finally:
        server.should_exit = True
        await task


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def spawned_server(
    directory: Path, *options: str, env: dict[str, str] | None = None, port: int | None = None
) -> Iterator[str]:
    """`sessiongraph serve` as a user starts it, in ``directory``, with the environment
    stripped of SESSIONGRAPH_ settings (plus ``env``), on ``port`` (a free one when
    None); yields its http:// base URL."""
    port = port or free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONGRAPH_")}
    log = directory / f"serve-{port}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "sessiongraph", "serve", "--port", str(port), *options],
            cwd=directory,
            env=clean | (env or {}),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "server not healthy in 60 s:\n" + log.read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


class WSClient:
    """One graphql-transport-ws connection; answers the server's pings by itself."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.pings = 0
        self._ids = itertools.count(1)

    @classmethod
    @asynccontextmanager
    async def open(
        cls, url: str, *, init: bool = True, receive_buffer: int | None = None, **options: Any
    ) -> AsyncIterator[WSClient]:
        """Connect; ``receive_buffer`` pins the socket's kernel buffer (no autotuning),
        for a client that reads slowly."""
        if receive_buffer is not None:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            sock.setblocking(False)
            host, port = url.split("/")[2].split(":")
            await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
            options["sock"] = sock
        async with connect(url, subprotocols=[PROTOCOL], **options) as ws:  # type: ignore[list-item]
            client = cls(ws)
            if init:
                await client.send({"type": "connection_init", "payload": {}})
                assert (await client.receive())["type"] == "connection_ack"
            yield client

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def receive(self, within: float = 10) -> dict[str, Any]:
        """The next message other than a ping."""
        async with asyncio.timeout(within):
            while True:
                message: dict[str, Any] = json.loads(await self.ws.recv())
                if message["type"] != "ping":
                    return message
                self.pings += 1
                await self.send({"type": "pong"})

    async def subscribe(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        operation_name: str | None = None,
    ) -> str:
        operation_id = str(next(self._ids))
        payload: dict[str, Any] = {"query": query, "variables": variables or {}}
        if operation_name is not None:
            payload["operationName"] = operation_name
        await self.send({"id": operation_id, "type": "subscribe", "payload": payload})
        return operation_id

    async def next(self, operation_id: str, within: float = 10) -> dict[str, Any]:
        """The data of the operation's next result, which must have no errors."""
        message = await self.receive(within)
        assert message == {**message, "id": operation_id, "type": "next"}, message
        assert "errors" not in message["payload"], message
        data: dict[str, Any] = message["payload"]["data"]
        return data

    async def nothing(self, within: float = 0.3) -> None:
        """No message (but pings) arrives ``within`` seconds."""
        try:
            message = await self.receive(within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected message: {message}")

    async def complete(self, operation_id: str) -> None:
        await self.send({"id": operation_id, "type": "complete"})


async def until(condition: Callable[[], bool], within: float = 10) -> None:
    """Wait until ``condition()`` is true."""
    async with asyncio.timeout(within):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)
