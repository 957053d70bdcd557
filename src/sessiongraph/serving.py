"""The HTTP protocol `sessiongraph serve` runs: uvicorn's h11, with Nagle's algorithm off.

asyncio turns TCP_NODELAY on only for a socket whose protocol number says TCP. With
``--workers``, uvicorn hands each worker the listening socket through
``socket.fromfd``, which loses that number (0), so the workers' connections kept
Nagle's algorithm: a response goes out as two writes (head, then body), and the
second waited for the client's delayed ACK, about 40 ms on every request of a
reused connection (measured: 44 ms a request with two workers, 0.8 ms with one).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol


def no_delay(transport: asyncio.BaseTransport) -> None:
    """Send what is written at once on a TCP connection (no Nagle's algorithm)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):  # closed already: nothing to send
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelayH11Protocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        no_delay(transport)
        super().connection_made(transport)
