"""`sessiongraph serve` turns Nagle's algorithm off on every connection, including on the
listening socket uvicorn hands its workers (where asyncio leaves it on)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from sessiongraph.serving import no_delay

pytestmark = pytest.mark.sqlite_only


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
