"""Load check: many concurrent clients against a real `sessiongraph serve`, for a fixed time.

    .venv/bin/python bench/load.py                 # 32 clients, 20 s, seeded SQLite
    .venv/bin/python bench/load.py --clients 64 --seconds 60
    .venv/bin/python bench/load.py --database-url postgresql+asyncpg://...   # seeded already

Loopback only, bounded in clients and time. Each client loops over a mix of real
requests: the dashboard list, one session's timeline, the BFF query, a mutation batch
pair on its own session, and two requests the server must refuse (a syntax error and
a query over the cost budget). Prints requests/s, p50/p99 latency per kind, the status
and error codes seen, and the server's resident memory over the run. Exits 1 on any
5xx or transport error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
MAX_CLIENTS = 256
MAX_SECONDS = 600

DASHBOARD = """{ sessions(first: 50) { totalCount pageInfo { endCursor hasNextPage } nodes {
  id status workflowName phaseDisplay agentModelDisplay reposDisplay totalTokensDisplay
  totalCostDisplay durationDisplay startedAt operationCount } } }"""
TIMELINE = """query ($id: String!) { session(id: $id) { id status operations(first: 200) {
  totalCount nodes { operationId operationType timestamp toolName success durationSeconds } } } }"""
BFF = """{ sessions(first: 50) { nodes { id workflowName operationCount operations(first: 20) {
  nodes { operationType toolName timestamp success durationSeconds operationId } } } } }"""
BAD = "{ sessions { "
TOO_BIG = "{ sessions(first: 200) { nodes { operations(first: 1000) { totalCount } } } }"
START = (
    """mutation ($id: String!) { startSession(input: {id: $id, workflowId: "wf-load"}) { id } }"""
)
RECORD = """mutation ($id: String!, $ops: [OperationInput!]!) {
  recordOperations(sessionId: $id, operations: $ops) { recordedOperationIds } }"""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start_server(database_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONGRAPH_")}
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "sessiongraph", "serve", "--host", "127.0.0.1",
             "--port", str(port), "--database-url", database_url, "--log-level", "warning"],
            env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip


async def wait_healthy(base: str, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=2) as client:
        for _ in range(600):
            if process.poll() is not None:
                raise SystemExit("the server exited; see its log")
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("the server did not become healthy")


class Tally:
    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.status: Counter[int] = Counter()
        self.codes: Counter[str] = Counter()
        self.transport_errors: Counter[str] = Counter()


async def client_loop(
    number: int, base: str, session_ids: list[str], deadline: float, tally: Tally
) -> None:
    own = f"load-{os.getpid()}-{number}-{time.monotonic_ns()}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        await http.post("/graphql", json={"query": START, "variables": {"id": own}})
        step = 0
        while time.monotonic() < deadline:
            step += 1
            kind, body = pick(step, number, session_ids, own)
            started = time.perf_counter()
            try:
                response = await http.post("/graphql", json=body)
            except httpx.TransportError as error:
                tally.transport_errors[type(error).__name__] += 1
                continue
            tally.latency[kind].append(time.perf_counter() - started)
            tally.status[response.status_code] += 1
            if response.headers.get("content-type", "").startswith("application/json"):
                for error in response.json().get("errors", []):
                    tally.codes[error.get("extensions", {}).get("code", "?")] += 1


def pick(step: int, number: int, session_ids: list[str], own: str) -> tuple[str, dict[str, object]]:
    kinds = ["dashboard", "timeline", "bff", "timeline", "dashboard", "record", "bad", "too-big"]
    kind = kinds[(step + number) % len(kinds)]
    if kind == "dashboard":
        return kind, {"query": DASHBOARD}
    if kind == "timeline":
        return kind, {"query": TIMELINE, "variables": {"id": session_ids[step % len(session_ids)]}}
    if kind == "bff":
        return kind, {"query": BFF}
    if kind == "record":
        ops = [
            {"operationId": f"{own}-{step}-{n}", "operationType": "tool_execution_started",
             "toolName": "Bash", "toolInput": {"command": "pytest"}}
            for n in range(5)
        ]  # fmt: skip
        return kind, {"query": RECORD, "variables": {"id": own, "ops": ops}}
    return kind, {"query": BAD if kind == "bad" else TOO_BIG}


async def run(args: argparse.Namespace, base: str, pid: int) -> int:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        listed = await http.post(
            "/graphql", json={"query": "{ sessions(first: 100) { nodes { id } } }"}
        )
    session_ids = [node["id"] for node in listed.json()["data"]["sessions"]["nodes"]]
    if not session_ids:
        raise SystemExit("the database has no sessions to read")

    # Warm up for a few seconds so memory is measured against a settled process.
    warm = Tally()
    warm_end = time.monotonic() + min(5.0, args.seconds / 4)
    await asyncio.gather(
        *(client_loop(n, base, session_ids, warm_end, warm) for n in range(args.clients))
    )
    memory = [rss_kib(pid)]
    tally = Tally()
    deadline = time.monotonic() + args.seconds

    async def sample() -> None:
        while time.monotonic() < deadline:
            await asyncio.sleep(1)
            memory.append(rss_kib(pid))

    started = time.monotonic()
    await asyncio.gather(
        sample(), *(client_loop(n, base, session_ids, deadline, tally) for n in range(args.clients))
    )
    elapsed = time.monotonic() - started
    memory.append(rss_kib(pid))

    total = sum(tally.status.values())
    print(f"\n{args.clients} clients for {elapsed:.1f} s against {base} ({args.database})")
    print(f"requests: {total}  ({total / elapsed:.0f}/s)")
    print(f"{'kind':<12}{'count':>8}{'p50 ms':>10}{'p99 ms':>10}")
    everything = sorted(v for values in tally.latency.values() for v in values)
    for kind, values in [*sorted(tally.latency.items()), ("all", everything)]:
        print(f"{kind:<12}{len(values):>8}{_ms(values, 0.5):>10.1f}{_ms(values, 0.99):>10.1f}")
    print(f"HTTP status: {dict(sorted(tally.status.items()))}")
    print(f"error codes: {dict(sorted(tally.codes.items()))}")
    print(f"transport errors: {dict(tally.transport_errors) or 0}")
    fives = sum(n for status, n in tally.status.items() if status >= 500)
    print(f"5xx: {fives}")
    first, last, peak = memory[0], memory[-1], max(memory)
    print(
        f"server RSS: {first / 1024:.1f} MiB after warm-up, peak {peak / 1024:.1f} MiB, "
        f"{last / 1024:.1f} MiB at the end ({(last - first) / 1024:+.1f} MiB)"
    )
    third = max(1, len(memory) // 3)
    print(
        "RSS by third of the run (MiB): "
        + ", ".join(
            f"{statistics.mean(memory[i : i + third]) / 1024:.1f}"
            for i in range(0, len(memory), third)
        )
    )
    return 1 if fives or tally.transport_errors else 0


def _ms(values: list[float], quantile: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * quantile))] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--database-url", help="an existing, seeded database (default: a new seeded SQLite)"
    )
    parser.add_argument(
        "--sessions", type=int, default=200, help="sessions to seed into the new SQLite"
    )
    args = parser.parse_args()
    if not 1 <= args.clients <= MAX_CLIENTS or not 0 < args.seconds <= MAX_SECONDS:
        raise SystemExit(f"clients must be 1..{MAX_CLIENTS} and seconds 1..{MAX_SECONDS}")

    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        url = args.database_url
        if url is None:
            url = f"sqlite+aiosqlite:///{directory / 'load.db'}"
            from sessiongraph.cli import main as cli

            cli(["seed", "--sessions", str(args.sessions), "--database-url", url])
        args.database = url.split("://")[0]
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        log = directory / "server.log"
        process = start_server(url, port, log)
        base = f"http://127.0.0.1:{port}"
        try:
            asyncio.run(wait_healthy(base, process))
            status = asyncio.run(run(args, base, process.pid))
        finally:
            process.terminate()
            process.wait(timeout=10)
        errors = [
            line for line in log.read_text().splitlines() if "Traceback" in line or "ERROR" in line
        ]
        print(f"server log errors: {len(errors)}")
        return status or (1 if errors else 0)


if __name__ == "__main__":
    sys.exit(main())
