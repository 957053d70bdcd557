"""`sessiongraph serve` turns Nagle's algorithm off on every connection, including on the
listening socket uvicorn hands its workers (where asyncio leaves it on); with
``--workers``, each worker accepts on a socket of its own."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from sessiongraph.cli import main
from sessiongraph.serving import BALANCED_REUSEPORT, no_delay
from tests import procnet
from tests.live import spawned_server, until


async def _nodelay_of_accepted(set_no_delay: bool) -> int:
    """TCP_NODELAY of a connection accepted on a listening socket rebuilt with
    ``socket.fromfd``, as each ``--workers`` process gets it."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    inherited = socket.fromfd(listener.fileno(), socket.AF_INET, socket.SOCK_STREAM)
    listener.close()
    seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            if set_no_delay:
                no_delay(transport)
            sock = transport.get_extra_info("socket")
            seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Probe, sock=inherited)
    port = inherited.getsockname()[1]
    async with server:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        value = await asyncio.wait_for(seen, 5)
        writer.close()
    return value


async def test_a_workers_connection_keeps_nagle_on_unless_told() -> None:
    # The condition the protocol exists for: the inherited socket has lost its
    # protocol number, so asyncio did not turn TCP_NODELAY on.
    assert await _nodelay_of_accepted(set_no_delay=False) == 0


async def test_the_serving_protocol_turns_nagle_off() -> None:
    assert await _nodelay_of_accepted(set_no_delay=True) != 0


@pytest.mark.skipif(not BALANCED_REUSEPORT, reason="the kernel does not balance SO_REUSEPORT")
async def test_workers_each_accept_on_a_socket_of_their_own(
    tmp_path: Path, postgres_url: str
) -> None:
    options = ("--database-url", postgres_url, "--workers", "2", "--log-level", "warning")
    with spawned_server(tmp_path, *options) as base:
        port = int(base.rsplit(":", 1)[1])
        await until(lambda: len(procnet.listeners(port)) == 2, within=30)
        workers = procnet.listeners(port)

        # Each worker listens on a socket of its own, not on one they share
        assert len(set().union(*workers.values())) == 2

        # And connections opened together are spread over both: the kernel assigns
        # each to a socket by its addresses (32 on one alone: a chance in 2^31)
        streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(32)]
        try:
            for _reader, writer in streams:
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            for reader, _writer in streams:
                assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
            owners = procnet.holders(port, [w.get_extra_info("sockname")[1] for _, w in streams])
        finally:
            for _reader, writer in streams:
                writer.close()
                await writer.wait_closed()
        assert set(owners) == set(workers)


def test_workers_on_a_taken_port_stop_at_once(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        options = ["--database-url", postgres_url, "--workers", "2", "--port", str(port)]

        assert main(["serve", *options]) == 1

    assert "Address already in use" in capsys.readouterr().err
