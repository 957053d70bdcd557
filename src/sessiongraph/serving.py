"""How `sessiongraph serve` serves: uvicorn's httptools protocol (the C parser uvicorn
prefers when it is installed; about 0.2 ms less CPU a request than h11 here) with Nagle's
algorithm off, and with ``--workers``, worker processes that each accept on a socket of
their own.

asyncio turns TCP_NODELAY on only for a socket whose protocol number says TCP. With
``--workers``, uvicorn hands each worker the listening socket through
``socket.fromfd``, which loses that number (0), so the workers' connections kept
Nagle's algorithm: a response goes out as two writes (head, then body), and the
second waited for the client's delayed ACK, about 40 ms on every request of a
reused connection (measured: 44 ms a request with two workers, 0.8 ms with one).

The protocol also bounds how long a client may take to send a request, and how many
connections a process serves (``NoDelayHttpToolsProtocol``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
import multiprocessing.process
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import orjson
import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from sessiongraph.config import Settings
from sessiongraph.errors import ErrorCode, Unavailable
from sessiongraph.guard import error_response

RETRY_AFTER_SECONDS = Unavailable.RETRY_AFTER_SECONDS


def no_delay(transport: asyncio.BaseTransport) -> None:
    """Send what is written at once on a TCP connection (no Nagle's algorithm)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):  # closed already: nothing to send
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _default(name: str) -> Any:
    return Settings.model_fields[name].default


@dataclass(frozen=True, slots=True)
class ClientLimits:
    """How long a client may take to send a request, and how many connections one
    process serves (``Settings.header_timeout_seconds`` and the rest)."""

    header_timeout: float = _default("header_timeout_seconds")
    body_timeout: float = _default("body_timeout_seconds")
    max_connections: int = _default("max_connections")

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientLimits:
        return cls(
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            max_connections=settings.max_connections,
        )


def protocol(settings: Settings) -> Any:
    """What `serve` hands uvicorn as its HTTP protocol: ``NoDelayHttpToolsProtocol`` with
    the limits of ``settings``. (A partial, not a class made here: ``--workers`` sends
    uvicorn's config to each process, pickled.)"""
    return functools.partial(NoDelayHttpToolsProtocol, limits=ClientLimits.from_settings(settings))


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with Nagle's algorithm off, and held to ``limits``.

    uvicorn bounds the wait for the next request on a kept-alive connection
    (``timeout_keep_alive``) and nothing else: a client could connect and send nothing,
    or send its headers or its body a byte at a time, and hold the connection (and, for
    a body, the request's task) for as long as it likes; and there was no bound on
    connections. Here:

    - the headers of a request must be in within ``header_timeout`` (from the
      connection, for the first request; from its first byte, for the next ones);
    - its body within ``body_timeout`` of its headers;

    else the client gets a 408 (or, before sending anything, nothing) and the
    connection is closed; a body cut short runs nothing (the guard sees a disconnect).
    A connection beyond ``max_connections`` (HTTP and WebSocket ones count) gets a 503
    ``UNAVAILABLE`` with ``Retry-After`` for its request, and is closed.
    """

    def __init__(self, *args: Any, limits: ClientLimits | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits or ClientLimits()
        self._deadline: asyncio.TimerHandle | None = None
        #: Whether a request has begun and its headers are not all in.
        self._in_headers = False
        self._over_capacity = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        no_delay(transport)
        super().connection_made(transport)
        self._over_capacity = len(self.connections) > self.limits.max_connections
        self._arm(self.limits.header_timeout, self._headers_too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        if self._deadline is None:  # a later request on the connection
            self._arm(self.limits.header_timeout, self._headers_too_slow)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm()
        upgrade = self.parser.should_upgrade() and self._should_upgrade()
        if self._over_capacity and not upgrade:
            self.app = _unavailable  # this connection's requests, and then it closes
        super().on_headers_complete()
        if not upgrade:
            self._arm(self.limits.body_timeout, self._body_too_slow)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()  # the WebSocket protocol takes the connection over
        if self._over_capacity:
            self._answer(_UNAVAILABLE)
            return
        super().handle_websocket_upgrade()

    def _arm(self, seconds: float, expired: Callable[[], None]) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # a response under way: the connection ends with it
            return
        if self._in_headers:
            self._answer(_TOO_SLOW_HEADERS)
        else:  # connected, and sent nothing: nothing to answer
            self.transport.close()

    def _body_too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle.response_started:  # answered already: what is left of the body is moot
            self.transport.close()
            return
        # The request's task sees a disconnect: it runs nothing and answers nothing.
        cycle.disconnected = True
        cycle.message_event.set()
        self._answer(_TOO_SLOW_BODY)

    def _answer(self, response: bytes) -> None:
        """Writes a whole response and closes the connection."""
        self.transport.write(response)
        self.transport.close()


def _response(status: int, message: str, code: ErrorCode, **extensions: Any) -> bytes:
    """A response, as bytes, with a JSON body in the GraphQL error shape."""
    body = orjson.dumps(
        {"data": None, "errors": [{"message": message, "extensions": {"code": code, **extensions}}]}
    )
    headers = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
    headers += ["content-type: application/json", f"content-length: {len(body)}"]
    if status == 503:
        headers.append(f"retry-after: {RETRY_AFTER_SECONDS}")
    headers.append("connection: close")
    return ("\r\n".join(headers) + "\r\n\r\n").encode("ascii") + body


_TOO_SLOW_HEADERS = _response(
    408, "The request's headers took too long to arrive", ErrorCode.BAD_USER_INPUT
)
_TOO_SLOW_BODY = _response(
    408, "The request's body took too long to arrive", ErrorCode.BAD_USER_INPUT
)
_BUSY = "The server has as many connections as it serves; retry the request later."
_UNAVAILABLE = _response(503, _BUSY, ErrorCode.UNAVAILABLE, retryAfterSeconds=RETRY_AFTER_SECONDS)


async def _unavailable(scope: Scope, receive: Receive, send: Send) -> None:
    """The answer to a request on a connection over the limit."""
    response = error_response(
        503,
        _BUSY,
        ErrorCode.UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS), "Connection": "close"},
        retryAfterSeconds=RETRY_AFTER_SECONDS,
    )
    await response(scope, receive, send)


# -- several processes ---------------------------------------------------------------------

#: Whether the kernel spreads the connections of one port over several sockets bound to
#: it with SO_REUSEPORT (Linux does, by a hash of each connection's addresses; other
#: systems accept the option without balancing, or give every connection to one socket).
BALANCED_REUSEPORT = sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")

logger = logging.getLogger("uvicorn.error")


def run_workers(config: uvicorn.Config, workers: int) -> int:
    """Serves ``config`` from ``workers`` processes, each accepting on a socket of its own.

    uvicorn's ``--workers`` has every process accept on one shared socket: whichever
    process wakes first accepts every connection waiting, so a burst of keep-alive
    connections lands mostly on one process and stays there. Here each process binds
    its own socket with SO_REUSEPORT and the kernel assigns each new connection to one
    of them. This process holds the address bound (not listening: it gets no
    connections) so that it is checked once, before any worker starts, and stays
    reserved while a worker is replaced; it starts the workers again when one dies,
    and stops them on SIGINT or SIGTERM.
    """
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    try:
        reserved = _reuseport_socket(family, config.host, config.port)
    except OSError as error:
        logger.error("cannot bind %s:%d: %s", config.host, config.port, error)
        return 1
    address = reserved.getsockname()[:2]
    shown = f"[{config.host}]" if family == socket.AF_INET6 else config.host
    logger.info("Uvicorn running on http://%s:%d (Press CTRL+C to quit)", shown, address[1])
    logger.info("Started parent process [%d], %d workers", os.getpid(), workers)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    spawn = multiprocessing.get_context("spawn")

    def start() -> multiprocessing.process.BaseProcess:
        process = spawn.Process(target=_worker, args=(config, family, address), daemon=False)
        process.start()
        return process

    status = 0
    processes = [start() for _ in range(workers)]
    try:
        while not stop.wait(0.5):
            for index, process in enumerate(processes):
                if process.is_alive():
                    continue
                if process.exitcode == STARTUP_FAILURE:  # it would fail again
                    logger.error("worker [%d] failed to start; stopping", process.pid)
                    stop.set()
                    status = 1
                    break
                logger.warning(
                    "worker [%d] exited (%s); starting another", process.pid, process.exitcode
                )
                processes[index] = start()
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes what it is serving
        for process in processes:
            process.join()
        reserved.close()
    logger.info("Stopping parent process [%d]", os.getpid())
    return status


def _reuseport_socket(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    # IPPROTO_TCP, not 0: asyncio then turns TCP_NODELAY on by itself.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _worker(config: uvicorn.Config, family: socket.AddressFamily, address: tuple[str, int]) -> None:
    """One worker process: its own listening socket on the shared address."""
    config.configure_logging()  # a spawned process starts without it
    sock = _reuseport_socket(family, *address)
    sock.listen(config.backlog)
    uvicorn.Server(config).run(sockets=[sock])
