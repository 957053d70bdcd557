"""What a recordOperations call costs: batches of new operations, one tree against another.

    .venv/bin/python bench/record.py --tree OLD/src --tree NEW/src [--postgres]
        [--rounds 15] [--calls 20] [--operations 100] [--lifecycle]

Each ``--tree`` (a source directory; default: the one this interpreter imports) gets a
worker process with a database of its own, migrated by that tree (a fresh SQLite file;
with ``--postgres``, a database on a throwaway PostgreSQL server, or on the server
``SESSIONGRAPH_TEST_POSTGRES_URL`` names). Each round, the workers take turns: each
starts a session and records ``--calls`` batches of ``--operations`` new operations
into it (tool calls of a few tools with durations, messages, a commit, a failure, as a
session records them) through its ASGI app, as a client over HTTP would, timing each
call; a slow moment of the machine falls on all alike. Printed per tree: the median of
the rounds' median milliseconds per call, the spread of the rounds, and the ratio to
the first tree; then the median CPU time per call of the worker process (its database
thread included on SQLite; not PostgreSQL's server), steadier on a busy machine.

``--lifecycle`` times a session's other writes instead: each call is a ``startSession``
and a ``completeSession`` with costs per model (what the rollups' triggers add to).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

START = "mutation ($id: String!) { startSession(input: {id: $id}) { id } }"
COMPLETE = """mutation ($id: String!) { completeSession(id: $id, status: COMPLETED,
  totalCostUsd: "1.25", inputTokens: 100, costByModel: [{model: "opus", costUsd: "1.25"}])
  { id } }"""
RECORD = """mutation ($id: String!, $ops: [OperationInput!]!) {
  recordOperations(sessionId: $id, operations: $ops) { recordedOperationIds } }"""
TOOLS = ["Bash", "Edit", "Read", "Grep", "Write"]


def batch(session: str, call: int, size: int) -> list[dict[str, Any]]:
    """``size`` operations as an agent records them: mostly tool calls in pairs."""
    ops: list[dict[str, Any]] = []
    for n in range(size):
        tool = TOOLS[(call + n // 2) % len(TOOLS)]
        op: dict[str, Any] = {"operationId": f"{session}-{call}-{n}"}
        if n % 10 == 9:
            op |= {"operationType": "message_response", "messageContent": "Done. " * 20}
        elif n % 50 == 48:
            op |= {"operationType": "git_commit", "git": {"sha": f"{call:040x}"}}
        elif n % 2 == 0:
            op |= {"operationType": "tool_execution_started", "toolName": tool}
            op["toolInput"] = {"command": f"pytest -k case_{n}"}
        else:
            failed = n % 17 == 0
            op |= {
                "operationType": "tool_execution_failed" if failed else "tool_execution_completed",
                "toolName": tool,
                "success": not failed,
                "durationSeconds": 0.25 + n / 100,
                "toolOutput": "ok " * 30,
            }
        ops.append(op)
    return ops


async def worker(database_url: str) -> None:
    """Answers the driver's commands on stdin (a JSON line each), one JSON line each."""
    import httpx

    from sessiongraph.app import create_app
    from sessiongraph.config import Settings
    from sessiongraph.db import migrate
    from sessiongraph.db.engine import create_engine

    engine = create_engine(Settings(database_url=database_url))
    await migrate.upgrade(engine)
    await engine.dispose()
    app = create_app(Settings(database_url=database_url))
    loop = asyncio.get_running_loop()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

            async def post(query: str, variables: dict[str, Any]) -> None:
                response = await client.post(
                    "/graphql", json={"query": query, "variables": variables}
                )
                if response.status_code != 200 or b'"errors"' in response.content:
                    raise SystemExit(response.text[:500])

            print(json.dumps({"ready": True}), flush=True)
            rounds = 0
            while line := await loop.run_in_executor(None, sys.stdin.readline):
                command = json.loads(line)
                session = f"s-{rounds}"
                rounds += 1
                if command.get("lifecycle"):
                    times = []
                    cpu_started = time.process_time_ns()
                    for call in range(command["calls"]):
                        started = time.perf_counter_ns()
                        await post(START, {"id": f"{session}-{call}"})
                        await post(COMPLETE, {"id": f"{session}-{call}"})
                        times.append(time.perf_counter_ns() - started)
                    cpu = (time.process_time_ns() - cpu_started) / len(times) / 1e6
                    median = statistics.median(times) / 1e6
                    print(json.dumps({"median_ms": median, "cpu_ms": cpu}), flush=True)
                    continue
                await post(START, {"id": session})
                batches = [
                    batch(session, call, command["operations"]) for call in range(command["calls"])
                ]
                times = []
                cpu_started = time.process_time_ns()
                for ops in batches:
                    started = time.perf_counter_ns()
                    await post(RECORD, {"id": session, "ops": ops})
                    times.append(time.perf_counter_ns() - started)
                cpu = (time.process_time_ns() - cpu_started) / len(batches) / 1e6
                median = statistics.median(times) / 1e6
                print(json.dumps({"median_ms": median, "cpu_ms": cpu}), flush=True)


def _env(tree: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONGRAPH_")}
    env["PYTHONPATH"] = str(tree)
    return env


async def _database_urls(count: int, postgres: str | None, folder: Path) -> list[str]:
    if postgres is None:
        return [f"sqlite+aiosqlite:///{folder / f'record{i}.db'}" for i in range(count)]
    import asyncpg

    plain = postgres.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(plain)
    urls = []
    try:
        for i in range(count):
            await conn.execute(f"DROP DATABASE IF EXISTS bench_record_{i}")
            await conn.execute(f"CREATE DATABASE bench_record_{i}")
            urls.append(postgres.rsplit("/", 1)[0] + f"/bench_record_{i}")
    finally:
        await conn.close()
    return urls


def drive(trees: list[Path], urls: list[str], args: argparse.Namespace) -> None:
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", url],
            env=_env(tree),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for tree, url in zip(trees, urls, strict=True)
    ]
    try:
        for process in workers:
            assert process.stdout is not None
            if not json.loads(process.stdout.readline()).get("ready"):
                raise SystemExit("a worker did not start")
        results: list[list[float]] = [[] for _ in trees]
        cpus: list[list[float]] = [[] for _ in trees]
        command = {"calls": args.calls, "operations": args.operations, "lifecycle": args.lifecycle}
        line = json.dumps(command) + "\n"
        for _ in range(args.rounds):
            for index, process in enumerate(workers):
                assert process.stdin is not None
                assert process.stdout is not None
                process.stdin.write(line)
                process.stdin.flush()
                answer = json.loads(process.stdout.readline())
                results[index].append(answer["median_ms"])
                cpus[index].append(answer["cpu_ms"])
        base, base_cpu = statistics.median(results[0]), statistics.median(cpus[0])
        for tree, medians, cpu in zip(trees, results, cpus, strict=True):
            median, spent = statistics.median(medians), statistics.median(cpu)
            print(
                f"{median:8.2f} ms  (rounds {min(medians):.2f}..{max(medians):.2f})  "
                f"x{median / base:.3f};  CPU {spent:.2f} ms  x{spent / base_cpu:.3f}  {tree}"
            )
    finally:
        for process in workers:
            if process.stdin is not None:
                process.stdin.close()
            process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", type=Path, default=[])
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--operations", type=int, default=100)
    parser.add_argument(
        "--lifecycle", action="store_true", help="time startSession + completeSession pairs"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(worker(args.worker))
        return
    trees = args.tree or [Path(__file__).resolve().parent.parent / "src"]
    with tempfile.TemporaryDirectory() as folder:
        if not args.postgres:
            urls = asyncio.run(_database_urls(len(trees), None, Path(folder)))
            drive(trees, urls, args)
            return
        from tests.postgres import throwaway_postgres

        with throwaway_postgres() as server:
            urls = asyncio.run(_database_urls(len(trees), server, Path(folder)))
            drive(trees, urls, args)


if __name__ == "__main__":
    main()
