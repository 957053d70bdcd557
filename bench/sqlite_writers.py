"""SQLite under concurrent writers, beside long reads, and a restart after kill -9.

    .venv/bin/python bench/sqlite_writers.py                   # 32 writers, 4 readers, 10 s
    .venv/bin/python bench/sqlite_writers.py --writers 16 --readers 8 --seconds 20
    .venv/bin/python bench/sqlite_writers.py --restarts 5 --port 18400
    .venv/bin/python bench/sqlite_writers.py --compare ../main/src src --rounds 3

Not part of the test suite. Seeds a SQLite file, serves it with `sessiongraph serve`
(a real process, over real HTTP) and measures three things:

1. writers alone: ``--writers`` tasks, each recording batches of ``--batch`` operations
   into a session of its own (completing it and starting another every 20 batches);
2. the same writers beside ``--readers`` tasks that read long lists (200 sessions with
   their metadata, tool usage and first 20 operations), again and again;
3. ``--restarts`` times: the server killed with SIGKILL while the writers write, started
   again, and the time until /healthz answers 200 (and what the start-up spent it on,
   from the log), then the time of a start after a clean stop, for comparison.

Prints, for 1 and 2, the writes made, the errors by code (``UNAVAILABLE`` is what a
"database is locked" becomes), writer p50/p99/max in ms, and the size the WAL reached.

With ``--compare``, it measures 2 for each of several checkouts' ``src`` instead, on
one database, a server of each in turn, ``--rounds`` times (so that the machine's other
load falls on all of them alike), and prints each one's figures over all rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]

from sessiongraph.config import Settings  # noqa: E402
from sessiongraph.db import migrate  # noqa: E402
from sessiongraph.db.engine import create_engine  # noqa: E402
from sessiongraph.seed import seed_demo_data  # noqa: E402

START = """mutation($id: String!) { startSession(input: {id: $id}) { id } }"""
RECORD = """mutation($id: String!, $ops: [OperationInput!]!) {
  recordOperations(sessionId: $id, operations: $ops) { recordedOperationIds } }"""
COMPLETE = """mutation($id: String!) {
  completeSession(id: $id, status: COMPLETED) { id } }"""
LONG_READ = """{ sessions(first: 200) { totalCount nodes { id status workflowName metadata
  totalCostDisplay durationDisplay startedAt operationCount toolCallCount
  toolUsage { toolName calls } operations(first: %d) { nodes { operationId
  operationType timestamp toolName } } } } }"""


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    reads: int = 0
    read_latencies: list[float] = field(default_factory=list)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


async def post(client: httpx.AsyncClient, query: str, variables: dict[str, object]) -> str | None:
    """The request's first error code (or transport error), None when it succeeded."""
    try:
        response = await client.post("/graphql", json={"query": query, "variables": variables})
    except httpx.HTTPError as error:
        return type(error).__name__
    try:
        errors = response.json().get("errors")
    except ValueError:
        return f"HTTP {response.status_code} (not JSON)"
    if errors:
        return str(errors[0].get("extensions", {}).get("code", errors[0].get("message")))
    return None


_ids = itertools.count()


async def writer(
    client: httpx.AsyncClient,
    stop: asyncio.Event,
    tally: Tally,
    batch: int,
    tag: str,
    pause: float = 0.0,
) -> None:
    while not stop.is_set():
        session = f"bench-{tag}-{os.getpid()}-{next(_ids)}"
        if error := await post(client, START, {"id": session}):
            tally.errors[f"startSession {error}"] += 1
            continue
        for _ in range(20):
            if stop.is_set():
                return
            ops = [
                {
                    "operationId": f"{session}-{next(_ids)}",
                    "operationType": "tool_execution_completed",
                    "toolName": "Read",
                    "toolInput": {"path": "/tmp/x", "n": n},
                    "inputTokens": 10,
                }
                for n in range(batch)
            ]
            started = time.perf_counter()
            error = await post(client, RECORD, {"id": session, "ops": ops})
            tally.latencies.append(time.perf_counter() - started)
            if error:
                tally.errors[f"recordOperations {error}"] += 1
            if pause:
                await asyncio.sleep(pause)
        if error := await post(client, COMPLETE, {"id": session}):
            tally.errors[f"completeSession {error}"] += 1


async def reader(
    client: httpx.AsyncClient, stop: asyncio.Event, tally: Tally, operations: int
) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        if error := await post(client, LONG_READ % operations, {}):
            tally.errors[f"read {error}"] += 1
        tally.reads += 1
        tally.read_latencies.append(time.perf_counter() - started)


def client(base: str, connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=base, limits=limits, timeout=60)


async def load(base: str, args: argparse.Namespace, readers: int, seconds: float) -> Tally:
    tally = Tally()
    stop = asyncio.Event()
    async with client(base, args.writers + readers) as http:
        tasks = [
            asyncio.create_task(writer(http, stop, tally, args.batch, f"w{n}", args.pause))
            for n in range(args.writers)
        ] + [
            asyncio.create_task(reader(http, stop, tally, args.read_operations))
            for _ in range(readers)
        ]
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*tasks)
    return tally


def report(name: str, tally: Tally, wal: Path) -> None:
    ms = [t * 1000 for t in tally.latencies]
    errors = ", ".join(f"{n} {what}" for what, n in tally.errors.most_common()) or "none"
    reads = ""
    if tally.reads:
        reads = f"; {tally.reads} reads, p50 {percentile(tally.read_latencies, 0.5) * 1000:.0f} ms"
    size = wal.stat().st_size / 2**20 if wal.exists() else 0.0
    print(
        f"{name}: {len(ms)} batches, writer p50 {percentile(ms, 0.5):.0f} ms, "
        f"p99 {percentile(ms, 0.99):.0f} ms, max {max(ms, default=0):.0f} ms{reads}; "
        f"errors: {errors}; WAL {size:.1f} MiB",
        flush=True,
    )


class Server:
    """One `sessiongraph serve` process on the file, in a process group of its own."""

    def __init__(self, url: str, port: int, log: Path, source: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONGRAPH_")}
        env["PYTHONPATH"] = str(source)
        self.log = log
        self.base = f"http://127.0.0.1:{port}"
        self.started = time.perf_counter()
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sessiongraph", "serve", "--port", str(port),
                 "--database-url", url, "--log-level", "warning"],
                env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def healthy_after(self, limit: float = 60) -> float:
        """Seconds from the start of the process to its first 200 from /healthz."""
        while time.perf_counter() - self.started < limit:
            if self.process.poll() is not None:
                raise SystemExit(self.log.read_text())
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return time.perf_counter() - self.started
            time.sleep(0.02)
        raise SystemExit(f"not healthy in {limit} s:\n{self.log.read_text()}")

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()


async def write_then_kill(server: Server, args: argparse.Namespace, seconds: float) -> None:
    stop = asyncio.Event()
    tally = Tally()
    async with client(server.base, args.writers) as http:
        tasks = [
            asyncio.create_task(writer(http, stop, tally, args.batch, f"k{n}"))
            for n in range(args.writers)
        ]
        await asyncio.sleep(seconds)
        server.kill()  # mid-write: batches are in flight
        stop.set()
        await asyncio.gather(*tasks)


async def prepare(url: str, sessions: int) -> None:
    engine = create_engine(Settings(database_url=url))
    try:
        await migrate.upgrade(engine)
        await seed_demo_data(engine, sessions=sessions)
    finally:
        await engine.dispose()


def compare(url: str, args: argparse.Namespace, log: Path, wal: Path) -> None:
    """Writers beside readers against a server of each ``--compare`` source in turn."""
    totals = {source: Tally() for source in args.compare}
    for round_ in range(args.rounds):
        for source in args.compare:
            server = Server(url, args.port, log, source.resolve())
            try:
                server.healthy_after()
                tally = asyncio.run(load(server.base, args, args.readers, args.seconds))
            finally:
                server.stop()
            report(f"round {round_ + 1}, {source}", tally, wal)
            total = totals[source]
            total.latencies += tally.latencies
            total.read_latencies += tally.read_latencies
            total.reads += tally.reads
            total.errors.update(tally.errors)
    print(f"{args.writers} writers beside {args.readers} readers, {args.rounds} rounds:")
    for source, total in totals.items():
        report(f"  {source}", total, wal)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--writers", type=int, default=32, help="writer tasks (32)")
    parser.add_argument("--readers", type=int, default=4, help="long-read tasks (4)")
    parser.add_argument("--batch", type=int, default=10, help="operations per batch (10)")
    parser.add_argument("--seconds", type=float, default=10.0, help="each phase's length (10)")
    parser.add_argument("--sessions", type=int, default=2000, help="sessions seeded (2000)")
    parser.add_argument("--restarts", type=int, default=3, help="kill -9 and restart (3)")
    parser.add_argument("--port", type=int, default=18400, help="the server's port (18400)")
    parser.add_argument(
        "--source",
        type=Path,
        default=REPO / "src",
        help="the sessiongraph package the server runs, for a comparison (this one's src)",
    )
    parser.add_argument(
        "--pause",
        type=float,
        default=0.0,
        help="seconds a writer waits after each batch (0: writers as fast as answered, "
        "so their latency is their number over the rate; with a pause, a write's own)",
    )
    parser.add_argument(
        "--read-operations", type=int, default=20, help="operations per session read (20)"
    )
    parser.add_argument(
        "--compare",
        type=Path,
        nargs="+",
        metavar="SRC",
        help="measure writers beside readers for each of these src directories, in turn",
    )
    parser.add_argument("--rounds", type=int, default=3, help="--compare: rounds (3)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="sqlite-writers-"))
    database = scratch / "bench.db"
    url = f"sqlite+aiosqlite:///{database}"
    wal = database.with_name(database.name + "-wal")
    log = scratch / "serve.log"
    asyncio.run(prepare(url, args.sessions))
    print(f"{args.sessions} sessions seeded in {database}", flush=True)
    if args.compare:
        try:
            compare(url, args, log, wal)
        finally:
            for path in scratch.iterdir():
                path.unlink()
            scratch.rmdir()
        return 0
    server = Server(url, args.port, log, args.source)
    try:
        print(f"first start: healthy after {server.healthy_after():.2f} s", flush=True)
        report(
            f"{args.writers} writers", asyncio.run(load(server.base, args, 0, args.seconds)), wal
        )
        tally = asyncio.run(load(server.base, args, args.readers, args.seconds))
        report(f"{args.writers} writers + {args.readers} readers", tally, wal)
        for _ in range(args.restarts):
            asyncio.run(write_then_kill(server, args, 3))
            size = wal.stat().st_size / 2**20 if wal.exists() else 0.0
            server = Server(url, args.port, log, args.source)
            took = server.healthy_after()
            print(f"after kill -9 (WAL {size:.1f} MiB): healthy after {took:.2f} s", flush=True)
        server.stop()
        server = Server(url, args.port, log, args.source)
        print(f"after a clean stop: healthy after {server.healthy_after():.2f} s", flush=True)
    finally:
        server.stop()
        locked = log.read_text(errors="replace").count("database is locked")
        print(f"'database is locked' in the server's log: {locked}")
        if args.keep:
            print(f"kept {scratch}")
        else:
            for path in scratch.iterdir():
                path.unlink()
            scratch.rmdir()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
