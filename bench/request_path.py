"""The fixed cost of a request: what sessiongraph spends around a query that costs nothing.

    .venv/bin/python bench/request_path.py [--tree SRC ...] [--http | --calls] [--floor]
        [--rounds 9] [--requests 300] [--only NAME] [--response-queries] [--profile FILE]

Seeds a small SQLite database, then sends the same cached request over and over to
sessiongraph's ASGI app, built as ``serve`` builds it, each query's answer checked
once before timing:

  typename        POST {"query": "{ __typename }"}
  typename GET    GET /graphql?query={ __typename }
  sessions(1)     POST { sessions(first: 1) { nodes { id } } }
  persisted       POST a persisted query's hash alone (sessions(1), registered first)

In-process (the default), each ``--tree`` (a source directory, e.g. another
worktree's ``src``; default: the one this interpreter imports) gets a worker process
that calls the app with a real ASGI request (scope, body, send), as uvicorn would; the
workers take turns, ``--requests`` requests of one query at a time, for ``--rounds``
rounds, so a slow moment of the machine falls on all alike. Printed per tree and
query: the median of the rounds' median microseconds per request, the spread of the
rounds, and the ratio to the first tree.

With ``--http`` each tree is served by ``sessiongraph serve`` (uvicorn, ports from
18200) and a minimal keep-alive client alternates one request to each server; printed:
the median latency, and the server's CPU time per request (from /proc).

``--floor`` adds the floor: Starlette alone, one route that decodes the body and
answers a constant (on uvicorn with ``serve``'s HTTP protocol, with ``--http``).

``--calls`` counts the Python function calls of a request instead (cProfile's count,
which no other load on the machine changes). ``--profile FILE`` profiles (cProfile)
the in-process requests of this interpreter's tree, writes the statistics to FILE
and prints the functions that cost most.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import hashlib
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

SESSIONS_ONE = "{ sessions(first: 1) { nodes { id } } }"
SESSIONS_ONE_HASH = hashlib.sha256(SESSIONS_ONE.encode()).hexdigest()

#: name -> (method, query string, body)
REQUESTS: dict[str, tuple[str, str, bytes]] = {
    "typename": ("POST", "", json.dumps({"query": "{ __typename }"}).encode()),
    "typename GET": ("GET", "query=" + quote("{ __typename }"), b""),
    "sessions(1)": ("POST", "", json.dumps({"query": SESSIONS_ONE}).encode()),
    "persisted": (
        "POST",
        "",
        json.dumps(
            {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": SESSIONS_ONE_HASH}}}
        ).encode(),
    ),
}
#: What registers the persisted query before it is timed.
REGISTER = json.dumps(
    {
        "query": SESSIONS_ONE,
        "extensions": {"persistedQuery": {"version": 1, "sha256Hash": SESSIONS_ONE_HASH}},
    }
).encode()

FIRST_PORT = 18200
#: The sources of this checkout (what the floor imports).
_SOURCES = Path(__file__).resolve().parent.parent / "src"


# -- one request through the ASGI app, in-process ----------------------------------------


def _scope(method: str, query_string: str, body: bytes) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1:18200"), (b"user-agent", b"bench"), (b"accept", b"*/*")]
    if method == "POST":
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": query_string.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", FIRST_PORT),
    }


class InProcess:
    """Calls an app as uvicorn would: a fresh scope per request, the body in one message."""

    def __init__(self, app: Any, state: dict[str, Any]) -> None:
        self.app = app
        self.state = state

    async def request(self, method: str, query_string: str, body: bytes) -> tuple[int, bytes]:
        scope = _scope(method, query_string, body)
        scope["state"] = self.state.copy()
        status = 0
        chunks: list[bytes] = []
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, b"".join(chunks)

    async def check(self) -> None:
        """Every request answers 200 with data and no errors (the persisted one registered)."""
        status, answer = await self.request("POST", "", REGISTER)
        if status != 200 or b'"errors"' in answer:
            raise SystemExit(f"registering the persisted query: {status} {answer[:300]!r}")
        for name, (method, query_string, body) in REQUESTS.items():
            status, answer = await self.request(method, query_string, body)
            if status != 200 or b'"errors"' in answer or b'"data"' not in answer:
                raise SystemExit(f"{name}: {status} {answer[:300]!r}")

    async def calls(self, name: str, requests: int) -> float:
        """Python function calls per request (cProfile's count: the same however busy the
        machine is)."""
        method, query_string, body = REQUESTS[name]
        profiler = cProfile.Profile()
        for _ in range(requests):
            profiler.enable()
            await self.request(method, query_string, body)
            profiler.disable()
        return pstats.Stats(profiler).total_calls / requests  # type: ignore[attr-defined, no-any-return]

    async def timed(self, name: str, requests: int) -> tuple[float, float]:
        """The median time of a request, and the CPU time (all threads) per request, µs.
        On a busy machine the CPU time is the steadier: waits for a core are not in it."""
        method, query_string, body = REQUESTS[name]
        times = []
        clock = time.perf_counter_ns
        cpu_started = time.process_time_ns()
        for _ in range(requests):
            started = clock()
            await self.request(method, query_string, body)
            times.append(clock() - started)
        cpu = (time.process_time_ns() - cpu_started) / requests
        return statistics.median(times) / 1000, cpu / 1000


async def _app(database_url: str) -> tuple[Any, Any]:
    """The app as `serve` builds it, its lifespan started; and the lifespan to end it."""
    from sessiongraph.app import create_app
    from sessiongraph.config import Settings

    app = create_app(Settings(database_url=database_url))
    lifespan = app.router.lifespan_context(app)
    state = await lifespan.__aenter__()
    # As `serve` does: what lives as long as the process is kept out of collections.
    gc.collect()
    gc.freeze()
    return InProcess(app, dict(state or {})), lifespan


def floor_app() -> Any:
    """The floor: Starlette alone, one route that decodes the body and answers a constant."""
    import orjson
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    answer = orjson.dumps({"data": {"__typename": "Query"}})

    async def endpoint(request: Request) -> Response:
        body = await request.body()
        if body:
            orjson.loads(body)
        return Response(answer, media_type="application/json")

    return Starlette(routes=[Route("/graphql", endpoint, methods=["GET", "POST"])])


async def _floor_app() -> tuple[Any, Any]:
    from contextlib import AsyncExitStack

    app = floor_app()
    gc.collect()
    gc.freeze()
    return InProcess(app, {}), AsyncExitStack()


def serve_floor(port: int) -> None:
    """The floor on uvicorn, with the HTTP protocol `serve` runs."""
    import uvicorn

    uvicorn.run(
        floor_app(),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        http="sessiongraph.serving:NoDelayHttpToolsProtocol",
    )


async def worker(database_url: str, floor: bool) -> None:
    """Answers the driver's commands on stdin (a JSON line each), one JSON line each."""
    client, lifespan = await (_floor_app() if floor else _app(database_url))
    await client.check()
    print(json.dumps({"ready": True}), flush=True)
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            command = json.loads(line)
            if command.get("calls"):
                calls = await client.calls(command["name"], command["requests"])
                print(json.dumps({"calls": calls}), flush=True)
                continue
            median, cpu = await client.timed(command["name"], command["requests"])
            print(json.dumps({"median_us": median, "cpu_us": cpu}), flush=True)
    finally:
        await lifespan.__aexit__(None, None, None)


# -- the driver ---------------------------------------------------------------------------


def _env(tree: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONGRAPH_")}
    env["PYTHONPATH"] = str(tree)
    return env


def _label(tree: Path | None) -> str:
    if tree is None:
        return "floor: Starlette alone (one route, the body decoded, a constant answer)"
    try:
        head = subprocess.run(
            ["git", "-C", str(tree), "log", "-1", "--format=%h"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        head = "?"
    dirty = subprocess.run(
        ["git", "-C", str(tree), "status", "--porcelain", "--", "."],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"{head}{'+' if dirty else ''} {tree}"


def use_response_queries() -> None:
    """Time bench/response.py's queries (large responses) instead of the trivial ones."""
    from response import QUERIES

    REQUESTS.clear()
    for name, (query, variables) in QUERIES.items():
        REQUESTS[name] = ("POST", "", json.dumps({"query": query, "variables": variables}).encode())
    _WORKER_OPTIONS.append("--response-queries")


#: Options the workers are started with (the driver's choice of requests).
_WORKER_OPTIONS: list[str] = []


async def seed(database_url: str) -> None:
    from sessiongraph.config import Settings
    from sessiongraph.db import migrate
    from sessiongraph.db.engine import create_engine
    from sessiongraph.seed import seed_demo_data

    engine = create_engine(Settings(database_url=database_url))
    try:
        await migrate.upgrade(engine)
        if "--response-queries" in _WORKER_OPTIONS:
            from response import seed_timeline

            await seed_demo_data(engine)
            await seed_timeline(engine)
        else:
            await seed_demo_data(engine, sessions=50)
    finally:
        await engine.dispose()


class Worker:
    def __init__(self, tree: Path | None, database_url: str) -> None:
        """A worker for the app of the sources at ``tree``; for the floor, without one."""
        floor = ["--floor"] if tree is None else []
        self.process = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--worker",
                "--database-url",
                database_url,
                *floor,
                *_WORKER_OPTIONS,
            ],
            env=_env(tree or _SOURCES),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, command: dict[str, Any] | None = None) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        if command is not None:
            self.process.stdin.write(json.dumps(command) + "\n")
            self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit("a worker stopped")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


def in_process(trees: list[Path | None], database_url: str, rounds: int, requests: int) -> None:
    workers = [Worker(tree, database_url) for tree in trees]
    medians: dict[tuple[int, str], list[float]] = {}
    cpu: dict[tuple[int, str], list[float]] = {}
    try:
        for w in workers:
            w.ask()  # ready
        for w in workers:  # warm-up
            for name in REQUESTS:
                w.ask({"name": name, "requests": requests})
        for _ in range(rounds):
            for name in REQUESTS:
                for index, w in enumerate(workers):
                    answer = w.ask({"name": name, "requests": requests})
                    medians.setdefault((index, name), []).append(answer["median_us"])
                    cpu.setdefault((index, name), []).append(answer["cpu_us"])
    finally:
        for w in workers:
            w.stop()
    print(f"\nin-process ASGI, {rounds} rounds of {requests} requests")
    for index, tree in enumerate(trees):
        print(f"  [{index}] {_label(tree)}")
    print("\nµs per request, the median of the rounds' medians (their min-max)")
    _table(trees, medians)
    print("\nCPU µs per request (the process's, every thread), the median of the rounds")
    _table(trees, cpu)


def calls(trees: list[Path | None], database_url: str, requests: int) -> None:
    workers = [Worker(tree, database_url) for tree in trees]
    counts: dict[tuple[int, str], list[float]] = {}
    try:
        for w in workers:
            w.ask()  # ready
        for name in REQUESTS:
            for index, w in enumerate(workers):
                w.ask({"name": name, "requests": 5})  # warm-up
                answer = w.ask({"name": name, "requests": requests, "calls": True})
                counts[(index, name)] = [answer["calls"]]
    finally:
        for w in workers:
            w.stop()
    print(f"\nPython function calls per request (cProfile), over {requests} requests")
    for index, tree in enumerate(trees):
        print(f"  [{index}] {_label(tree)}")
    _table(trees, counts)


def _table(trees: list[Path | None], medians: dict[tuple[int, str], list[float]]) -> None:
    header = f"{'request':<16}" + "".join(
        f"{f'[{i}]':>26}" + (f"{'/[0]':>7}" if i else "") for i in range(len(trees))
    )
    print(header)
    for name in REQUESTS:
        first = statistics.median(medians[(0, name)])
        cells = []
        for index in range(len(trees)):
            values = medians[(index, name)]
            median = statistics.median(values)
            cell = f"{median:8.1f} ({min(values):.0f}-{max(values):.0f})"
            cells.append(f"{cell:>26}" + (f"{median / first:>7.2f}" if index else ""))
        print(f"{name:<16}" + "".join(cells))


# -- over HTTP: `sessiongraph serve` and a keep-alive client ------------------------------


def _http_request(method: str, query_string: str, body: bytes) -> bytes:
    target = "/graphql" + (f"?{query_string}" if query_string else "")
    head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n"
    if method == "POST":
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


class KeepAlive:
    def __init__(self, port: int) -> None:
        self.port = port

    async def open(self) -> None:
        for _ in range(300):
            try:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
                return
            except OSError:
                await asyncio.sleep(0.1)
        raise SystemExit(f"nothing answers on port {self.port}")

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length")
        )
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def over_http(trees: list[Path | None], database_url: str, scratch: Path, requests: int) -> None:
    servers = []
    for index, tree in enumerate(trees):
        port = str(FIRST_PORT + index)
        args = [sys.executable, "-m", "sessiongraph", "serve", "--port", port,
                "--database-url", database_url, "--log-level", "warning"]  # fmt: skip
        if tree is None:
            args = [sys.executable, __file__, "--serve-floor", port]
        with (scratch / f"serve{index}.log").open("wb") as log:
            servers.append(
                subprocess.Popen(
                    args, env=_env(tree or _SOURCES), stdout=log, stderr=subprocess.STDOUT
                )
            )
    try:
        latencies, cpu = asyncio.run(_time_http([server.pid for server in servers], requests))
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)
    print(f"\nover HTTP (uvicorn, keep-alive), {requests} requests each, alternating")
    for index, tree in enumerate(trees):
        print(f"  [{index}] {_label(tree)}")
    print(
        f"{'request':<14}" + "".join(f"{f'[{i}] µs':>12}{'cpu µs':>9}" for i in range(len(trees)))
    )
    for name in REQUESTS:
        cells = "".join(
            f"{statistics.median(latencies[(i, name)]):>12.1f}{cpu[(i, name)]:>9.0f}"
            for i in range(len(trees))
        )
        print(f"{name:<14}{cells}")


async def _time_http(
    pids: list[int], requests: int
) -> tuple[dict[tuple[int, str], list[float]], dict[tuple[int, str], float]]:
    """Per server and request: the latencies (µs), and the server's CPU µs per request."""
    clients = [KeepAlive(FIRST_PORT + index) for index in range(len(pids))]
    latencies: dict[tuple[int, str], list[float]] = {}
    cpu: dict[tuple[int, str], float] = {}
    for client in clients:
        await client.open()
    try:
        for client in clients:
            status, answer = await client.send(_http_request("POST", "", REGISTER))
            if status != 200 or b'"errors"' in answer:
                raise SystemExit(f"registering the persisted query: {status} {answer[:300]!r}")
        for name, request in REQUESTS.items():
            raw = _http_request(*request)
            for client in clients:  # warm-up, and the answer checked
                for _ in range(200):
                    status, answer = await client.send(raw)
                    if status != 200 or b'"errors"' in answer:
                        raise SystemExit(f"{name}: {status} {answer[:300]!r}")
            started = [_cpu_seconds(pid) for pid in pids]
            clock = time.perf_counter_ns
            for _ in range(requests):
                for index, client in enumerate(clients):
                    begun = clock()
                    await client.send(raw)
                    latencies.setdefault((index, name), []).append((clock() - begun) / 1000)
            for index, pid in enumerate(pids):
                cpu[(index, name)] = (_cpu_seconds(pid) - started[index]) / requests * 1e6
    finally:
        for client in clients:
            await client.close()
    return latencies, cpu


# -- profile ------------------------------------------------------------------------------


async def profile(database_url: str, requests: int, output: Path) -> None:
    client, lifespan = await _app(database_url)
    try:
        await client.check()
        for name in REQUESTS:
            await client.timed(name, requests)  # warm-up
        profiler = cProfile.Profile()
        for name in REQUESTS:
            method, query_string, body = REQUESTS[name]
            for _ in range(requests):
                profiler.enable()
                await client.request(method, query_string, body)
                profiler.disable()
    finally:
        await lifespan.__aexit__(None, None, None)
    profiler.dump_stats(output)
    stats = pstats.Stats(str(output))
    stats.sort_stats("tottime").print_stats(40)
    stats.sort_stats("cumulative").print_stats(60)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tree", type=Path, action="append", help="a source directory (repeat)")
    parser.add_argument("--http", action="store_true", help="through `sessiongraph serve`")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--requests", type=int, default=300, help="per round (in-process)")
    parser.add_argument("--profile", type=Path, help="cProfile the in-process requests")
    parser.add_argument(
        "--calls", action="store_true", help="count Python calls per request instead of timing"
    )
    parser.add_argument("--only", action="append", help="these requests only (by name)")
    parser.add_argument(
        "--floor", action="store_true", help="also time Starlette alone (the floor)"
    )
    parser.add_argument(
        "--response-queries",
        action="store_true",
        help="bench/response.py's queries (dashboard, timeline, BFF) on its demo data instead",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-floor", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.response_queries:
        use_response_queries()
    if args.worker:
        asyncio.run(worker(args.database_url, args.floor))
        return
    if args.serve_floor:
        serve_floor(args.serve_floor)
        return
    for name in set(REQUESTS) - set(args.only or REQUESTS):
        del REQUESTS[name]
    import sessiongraph

    trees: list[Path] = [p.resolve() for p in args.tree or []] or [
        Path(sessiongraph.__file__).resolve().parent.parent
    ]
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite+aiosqlite:///{Path(scratch) / 'bench.db'}"
        asyncio.run(seed(url))
        if args.profile:
            asyncio.run(profile(url, args.requests, args.profile))
        every: list[Path | None] = [*trees, None] if args.floor else [*trees]
        if args.calls:
            calls(every, url, args.requests)
        elif args.http:
            over_http(every, url, Path(scratch), args.requests * args.rounds)
        else:
            in_process(every, url, args.rounds, args.requests)


if __name__ == "__main__":
    main()
