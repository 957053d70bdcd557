"""How `sessiongraph serve --workers N` shares keep-alive connections among its workers.

    .venv/bin/python bench/workers.py                      # 2 workers, 64 connections, 10 s
    .venv/bin/python bench/workers.py --workers 4 --connections 16 --rounds 5

Not part of the test suite. Starts a throwaway PostgreSQL (as the test suite does),
seeds it, serves it with ``serve --workers N``, then opens all the connections at once,
as a load balancer or a benchmark client does, and has each send the dashboard query
again and again over its one connection. Which worker holds a connection is read from
/proc (tests/procnet.py): the socket of the connection's server end, found in
/proc/net/tcp by the client's port, belongs to the worker that has it open; nothing is
asked of the server.
Prints, per round, the connections and the responses each worker got, the median
latency of its responses, and its CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]

from tests import procnet  # noqa: E402
from tests.postgres import URL_VARIABLE, throwaway_postgres  # noqa: E402

from sessiongraph.config import Settings  # noqa: E402
from sessiongraph.db import migrate  # noqa: E402
from sessiongraph.db.engine import create_engine  # noqa: E402
from sessiongraph.seed import seed_demo_data  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
DASHBOARD = """{ sessions(first: 20) { totalCount nodes { id status workflowName
  totalCostDisplay durationDisplay startedAt operationCount } } }"""


async def prepare(url: str) -> None:
    engine = create_engine(Settings(database_url=url))
    try:
        await migrate.upgrade(engine)
        await seed_demo_data(engine, sessions=100)
    finally:
        await engine.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def children(pid: int) -> list[int]:
    found = []
    for child in procnet.pids():
        try:
            stat = Path(f"/proc/{child}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(child)
    return found


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class Connection:
    """One keep-alive HTTP/1.1 connection, sending the same POST again and again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.latencies: list[float] = []
        body = orjson.dumps({"query": DASHBOARD})
        self.request = (
            b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body
        )

    async def open(self) -> int:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        local_port: int = self.writer.get_extra_info("sockname")[1]
        return local_port

    async def run(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            self.writer.write(self.request)
            head = await self.reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            body = await self.reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200") or b'"errors"' in body:
                raise SystemExit(f"a bad response: {head[:40]!r} {body[:200]!r}")
            self.latencies.append(time.perf_counter() - started)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def one_round(port: int, workers: list[int], connections: int, seconds: float) -> None:
    clients = [Connection(port) for _ in range(connections)]
    local_ports = await asyncio.gather(*(client.open() for client in clients))
    await asyncio.sleep(0.2)  # every connection accepted by some worker
    owners = procnet.holders(port, list(local_ports))
    cpu_before = {pid: cpu_seconds(pid) for pid in workers}
    await asyncio.gather(*(client.run(time.monotonic() + seconds) for client in clients))
    cpu = {pid: cpu_seconds(pid) - cpu_before[pid] for pid in workers}
    await asyncio.gather(*(client.close() for client in clients))
    held = Counter(owners)
    latencies: dict[int | None, list[float]] = {}
    for owner, client in zip(owners, clients, strict=True):
        latencies.setdefault(owner, []).extend(client.latencies)
    total = sum(len(values) for values in latencies.values())
    cells = []
    for pid in workers:
        times = sorted(latencies.get(pid, []))
        share = len(times) / total if total else 0
        p50 = f"{times[len(times) // 2] * 1000:>5.0f}" if times else "    —"
        cells.append(
            f"[{pid}] {held[pid]:>3} conns {len(times):>6} responses ({share:>4.0%}), "
            f"p50 {p50} ms, {cpu[pid]:>4.1f} s CPU"
        )
    unknown = f", {held[None]} not found" if held[None] else ""
    print("  " + " | ".join(cells) + unknown, flush=True)


def measure(args: argparse.Namespace, url: str, scratch: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONGRAPH_")}
    with (scratch / "serve.log").open("wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "sessiongraph", "serve", "--port", str(port),
             "--database-url", url, "--workers", str(args.workers), "--log-level", "warning"],
            env=env | {"SESSIONGRAPH_ENV": "production"}, stdout=output,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while len(workers) < args.workers:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit((scratch / "serve.log").read_text())
            time.sleep(0.2)
            # Not multiprocessing's helpers: the processes listening on the port.
            listening = procnet.listeners(port)
            workers = sorted(pid for pid in children(server.pid) if pid in listening)
        for _ in range(100):  # every worker up: each answers
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        time.sleep(2)
        print(
            f"serve --workers {args.workers}: worker pids {workers}; {args.connections} "
            f"keep-alive connections opened at once, {args.seconds:g} s of dashboard "
            "queries per round"
        )
        for _ in range(args.rounds):
            asyncio.run(one_round(port, workers, args.connections, args.seconds))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=2, help="server processes (2)")
    parser.add_argument("--connections", type=int, default=64, help="connections (64)")
    parser.add_argument("--seconds", type=float, default=10.0, help="each round's length (10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each with new connections")
    args = parser.parse_args()
    os.environ.pop(URL_VARIABLE, None)  # always a server of its own, seeded here
    with throwaway_postgres() as url, tempfile.TemporaryDirectory() as scratch:
        asyncio.run(prepare(url))
        measure(args, url, Path(scratch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
