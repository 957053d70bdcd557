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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.process
import os
import signal
import socket
import sys
import threading

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def no_delay(transport: asyncio.BaseTransport) -> None:
    """Send what is written at once on a TCP connection (no Nagle's algorithm)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):  # closed already: nothing to send
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        no_delay(transport)
        super().connection_made(transport)


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
