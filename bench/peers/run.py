"""sessiongraph against PostGraphile v4 and v5 on one PostgreSQL database, in one run.

    .venv/bin/python bench/peers/run.py            # 12 s loads: about 14 min on 2 busy cores
    .venv/bin/python bench/peers/run.py --quick    # 5 s loads: about 9 min
    .venv/bin/python bench/peers/run.py --seconds 20 --processes 1 --clients 16

Not part of the test suite. Needs npm (the registry) and PostgreSQL's binaries (as the
test suite). It installs PostGraphile 4.14.1, PostGraphile 5.1.5, autocannon 9 and
node 22 (which runs all the node programs) from the lock files in bench/peers/ into
bench/peers/.cache/ (git ignores it; `npm ci` reruns only when a lock changes), then:

1. starts a throwaway PostgreSQL server and fills one database with sessiongraph's own
   tools: its migrations, ``seed_demo_data`` (--sessions 1,000: about 79k operations)
   and bench/response.py's 600-operation timeline session;
2. serves it with ``sessiongraph serve`` (SESSIONGRAPH_ENV=production, a read-only
   bearer token, which every client sends to all three; default pool), the PostGraphile
   v4 CLI (production flags and postgraphile4/.postgraphilerc.js) and PostGraphile v5
   (postgraphile5/: the amber preset on grafserv), both with NODE_ENV=production and
   their default pool of 10 connections;
3. checks that the three answer the dashboard, timeline and BFF queries
   (bench/peers/queries.py) with the same rows in the same order and the same values of
   the columns they share; sessiongraph's display fields must equal the peers' raw
   columns formatted by sessiongraph's display functions. Exits 1 if not;
4. single-client latency: one request at a time, the servers taking turns (median and
   p99 of --requests each, after 3 rounds of warm-up);
5. throughput: autocannon at 16 and 64 connections for --seconds each, with one process
   per server and then two (``serve --workers 2``, v4's ``--cluster-workers 2``, v5
   under node's cluster module). A response is ok only when its body is byte for byte
   the one the check accepted, so non-2xx, GraphQL errors, timeouts and connection
   errors are all bad. Each run starts when every server and PostgreSQL are quiet (a
   server may still be working for the previous run's clients) and warms up under its
   own load until every connection has had an answer, so the window is steady.

It prints the check, the latency table, then per query: ok req/s, bad responses,
autocannon's p50/p99, CPU time per ok request of the server's process tree and of
PostgreSQL's (from /proc, over the window), the server tree's peak RSS (summed over its
processes), and the cores that autocannon and everything else on the machine used
meanwhile ("others": the machine is shared, so numbers are noisy); last, sessiongraph's
ok req/s divided by each peer's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent.parent), str(HERE.parent)]

import queries  # noqa: E402
import servers  # noqa: E402
from response import TIMELINE_ID, seed_timeline  # noqa: E402
from tests.postgres import URL_VARIABLE, throwaway_postgres  # noqa: E402

from sessiongraph.config import Settings, token_digest  # noqa: E402
from sessiongraph.db import migrate  # noqa: E402
from sessiongraph.db.engine import create_engine  # noqa: E402
from sessiongraph.seed import seed_demo_data  # noqa: E402

CPUS = os.cpu_count() or 1
TIMEOUT_SECONDS = 60


@dataclass
class Database:
    url: str
    postmaster: int
    version: str
    sessions: int
    operations: int


async def prepare(url: str, sessions: int) -> Database:
    """Migrations, the demo data and the timeline session, as sessiongraph's tools make them."""
    engine = create_engine(Settings(database_url=url))
    try:
        await migrate.upgrade(engine)
        report = await seed_demo_data(engine, sessions=sessions)
        await seed_timeline(engine)
        async with engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.exec_driver_sql("VACUUM ANALYZE")
            backend, version = (
                await autocommit.exec_driver_sql(
                    "SELECT pg_backend_pid(), current_setting('server_version')"
                )
            ).one()
            postmaster = servers.parent(backend)  # while this backend lives
    finally:
        await engine.dispose()
    return Database(url, postmaster, version, report.sessions + 1, report.operations + 600)


# -- the check ---------------------------------------------------------------------------


def check(
    running: list[servers.Server], headers: dict[str, str], scratch: Path
) -> dict[tuple[str, str], Path]:
    """Asks every server every query; exits 1 unless their shared values agree. Returns
    the file holding each accepted response body, the one load runs expect."""
    expected: dict[tuple[str, str], Path] = {}
    print("\ncheck: the same rows and values from all three")
    with httpx.Client(timeout=TIMEOUT_SECONDS, headers=headers) as http:
        for query in queries.QUERIES:
            bodies = queries.requests(query, TIMELINE_ID)
            shared: dict[str, Any] = {}
            sizes = []
            for server in running:
                response = http.post(server.url, json=bodies[server.key])
                answer = response.json()
                if response.status_code != 200 or answer.get("errors") or not answer.get("data"):
                    raise SystemExit(f"{server.label} {query.key}: {response.text[:500]}")
                peer = queries.DIALECTS.get(server.key)
                shared[server.key] = query.shared(answer["data"], peer)
                path = scratch / f"{server.key}-{query.key}.json"
                path.write_bytes(response.content)
                expected[server.key, query.key] = path
                sizes.append(f"{server.label} {len(response.content):,}")
            reference = shared["sessiongraph"]
            for key, value in shared.items():
                if value != reference:
                    _explain_difference(query.key, key, reference, value)
                    raise SystemExit(1)
            print(
                f"  {query.key:<10} {query.describe(reference)}; response bytes: {', '.join(sizes)}"
            )
        # Pages of 200 by cursor, and for the peers by offset too: their cursors never
        # reach the sessions without startedAt when NULLs sort last.
        orders = {server.key: _every_session(http, server) for server in running}
        offsets = {s.key: _every_session(http, s, by_offset=True) for s in running[1:]}
    reference = orders["sessiongraph"]
    undated = sum(started is None for _, started in reference)
    for key, order in offsets.items():
        if order != reference:
            _explain_difference("order", key, reference, order)
            raise SystemExit(1)
    print(
        f"  {'order':<10} all {len(reference):,} sessions, 200 a page: the same order from "
        f"all three, newest first, the {undated} without startedAt last (sessiongraph by "
        "cursor, the peers by offset)"
    )
    for server in running[1:]:
        shortfall = len(reference) - len(orders[server.key])
        same = orders[server.key] == reference
        print(
            f"  {'':<10} {server.label} by cursor: "
            + (
                "the same"
                if same
                else f"{len(orders[server.key]):,} sessions ({shortfall} missing)"
            )
        )
    return expected


def _every_session(
    http: httpx.Client, server: servers.Server, *, by_offset: bool = False
) -> list[tuple[str, Any]]:
    peer = queries.DIALECTS.get(server.key)
    text = queries.SESSIONGRAPH_ORDER if peer is None else peer.order(by_offset=by_offset)
    key = "id" if peer is None else peer.id_field
    rows: list[tuple[str, Any]] = []
    variables: dict[str, Any] = {"offset": 0} if by_offset else {"after": None}
    while True:
        response = http.post(server.url, json={"query": text, "variables": variables})
        page = response.json()["data"]["sessions" if peer is None else "allSessions"]
        rows += [(node[key], queries.parse_time(node["startedAt"])) for node in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"] or not page["nodes"]:
            return rows
        if by_offset:
            variables["offset"] += len(page["nodes"])
        else:
            variables["after"] = page["pageInfo"]["endCursor"]


def _explain_difference(query: str, server: str, reference: Any, value: Any) -> None:
    print(f"  {query}: {server} differs from sessiongraph", file=sys.stderr)
    ours = reference.get("rows", reference) if isinstance(reference, dict) else reference
    theirs = value.get("rows", value) if isinstance(value, dict) else value
    if isinstance(ours, list) and isinstance(theirs, list):
        for index, (a, b) in enumerate(zip(ours, theirs, strict=False)):
            if a != b:
                print(f"    first difference at row {index}:\n    {a}\n    {b}", file=sys.stderr)
                return
        print(f"    {len(ours)} rows against {len(theirs)}", file=sys.stderr)
    else:
        print(f"    {reference}\n    {value}", file=sys.stderr)


# -- single-client latency ---------------------------------------------------------------


def latency(
    running: list[servers.Server],
    headers: dict[str, str],
    expected: dict[tuple[str, str], Path],
    repeats: int,
) -> dict[tuple[str, str], tuple[float, float, int]]:
    """(median ms, p99 ms, bad answers) per (server, query): one request at a time, the
    servers taking turns, so a slow moment of the machine falls on all of them alike."""
    clients = {s.key: httpx.Client(timeout=TIMEOUT_SECONDS, headers=headers) for s in running}
    wanted = {key: path.read_bytes() for key, path in expected.items()}
    times: dict[tuple[str, str], list[float]] = {}
    bad: dict[tuple[str, str], int] = {}
    try:
        for round_ in range(repeats + 3):  # three rounds of warm-up
            for query in queries.QUERIES:
                bodies = queries.requests(query, TIMELINE_ID)
                for server in running:
                    key = (server.key, query.key)
                    content = json.dumps(bodies[server.key]).encode()
                    started = time.perf_counter()
                    response = clients[server.key].post(server.url, content=content)
                    elapsed = time.perf_counter() - started
                    if round_ < 3:
                        continue
                    times.setdefault(key, []).append(elapsed * 1000)
                    good = response.content == wanted[key]
                    bad[key] = bad.get(key, 0) + (not good)
    finally:
        for client in clients.values():
            client.close()
    return {key: (statistics.median(v), _quantile(v, 0.99), bad[key]) for key, v in times.items()}


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


# -- throughput --------------------------------------------------------------------------


@dataclass
class Load:
    ok_per_second: float
    bad: int
    p50: float | None
    p99: float | None
    server_ms: float | None  # CPU per ok request
    postgres_ms: float | None
    rss_mib: float
    client_cores: float
    other_cores: float
    warm_seconds: float
    warm_complete: bool  # every connection had an answer before the window opened
    sample: str | None


def load(
    node: Path,
    server: servers.Server,
    database: Database,
    body: dict[str, Any],
    headers: dict[str, str],
    expected: Path,
    connections: int,
    seconds: float,
    min_warm: float,
    max_warm: float,
    scratch: Path,
) -> Load:
    assert server.process is not None
    spec = scratch / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "url": server.url,
                "headers": headers,
                "body": json.dumps(body),
                "expectedFile": str(expected),
                "connections": connections,
                "seconds": seconds,
                "minWarmSeconds": min_warm,
                "maxWarmSeconds": max_warm,
                "timeoutSeconds": TIMEOUT_SECONDS,
            }
        )
    )
    cannon = subprocess.Popen(
        [str(node), "cannon.mjs", str(spec)],
        cwd=servers.CACHE / "tools",
        stdout=subprocess.PIPE,
        text=True,
    )
    assert cannon.stdout is not None
    roots = (server.process.pid, database.postmaster, cannon.pid)

    def reading() -> tuple[list[float], float]:
        return [servers.cpu_seconds(pid) for pid in roots], servers.machine_busy_seconds()[0]

    if cannon.stdout.readline().strip() != "start":
        raise SystemExit(f"autocannon failed against {server.label}")
    cpu_before, busy_before = reading()
    started = time.monotonic()
    peak = [servers.rss_mib(server.process.pid)]
    done = threading.Event()

    def sample_memory() -> None:
        while not done.wait(0.5):
            peak[0] = max(peak[0], servers.rss_mib(server.process.pid))  # type: ignore[union-attr]

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    if cannon.stdout.readline().strip() != "stop":
        raise SystemExit(f"autocannon failed against {server.label}")
    cpu_after, busy_after = reading()
    window = time.monotonic() - started
    done.set()
    sampler.join()
    result = json.loads(cannon.stdout.readline())
    cannon.wait(timeout=30)

    used = [after - before for before, after in zip(cpu_before, cpu_after, strict=True)]
    ok = result["ok"]
    others = (busy_after - busy_before) - sum(used)
    return Load(
        ok_per_second=ok / result["seconds"],
        bad=result["mismatches"] + result["errors"],
        p50=result["p50"],
        p99=result["p99"],
        server_ms=used[0] / ok * 1000 if ok else None,
        postgres_ms=used[1] / ok * 1000 if ok else None,
        rss_mib=peak[0],
        client_cores=used[2] / window,
        other_cores=max(0.0, others / window),
        warm_seconds=result["warmSeconds"],
        warm_complete=result["warmComplete"],
        sample=result["sample"],
    )


# -- the run -----------------------------------------------------------------------------


def start(
    running: list[servers.Server], logs: Path, processes: int, headers: dict[str, str]
) -> None:
    for server in running:
        server.start(logs / f"{server.key}-{processes}p.log")
    for server in running:
        server.wait_ready(headers)


def run(args: argparse.Namespace, node: Path, database: Database) -> None:
    token = "peer-benchmark-" + secrets.token_urlsafe(16)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    logs = servers.CACHE / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    scratch = servers.CACHE / "run"
    scratch.mkdir(parents=True, exist_ok=True)

    def make(processes: int) -> list[servers.Server]:
        return [
            servers.sessiongraph(database.url, processes, token_digest(token)),
            servers.postgraphile4(node, database.url, processes),
            servers.postgraphile5(node, database.url, processes),
        ]

    labels = {s.key: s.label for s in make(1)}
    print(
        f"PostgreSQL {database.version}: {database.sessions:,} sessions, "
        f"{database.operations:,} operations\nsessiongraph (Python {sys.version.split()[0]}), "
        f"PostGraphile {servers.package_version('postgraphile4')} and "
        f"{servers.package_version('postgraphile5')} on node {servers.node_version(node)}; "
        f"{CPUS} CPUs, load average {_load_average()}"
    )
    expected: dict[tuple[str, str], Path] = {}
    latencies: dict[tuple[str, str], tuple[float, float, int]] = {}
    loads: dict[tuple[int, str, int, str], Load] = {}
    for processes in args.processes:
        running = make(processes)
        try:
            start(running, logs, processes, headers)
            roots = [database.postmaster, *(s.process.pid for s in running if s.process)]
            if not expected:
                expected = check(running, headers, scratch)
                print(f"\nsingle-client latency, {args.requests} requests per server and query ...")
                latencies = latency(running, headers, expected, args.requests)
            else:
                _same_bodies(running, headers, expected)
            for query in queries.QUERIES:
                bodies = queries.requests(query, TIMELINE_ID)
                for connections in args.clients:
                    for server in running:
                        waited = servers.wait_idle(roots)
                        print(
                            f"load: {processes} process(es), {query.key}, {connections} "
                            f"connections, {server.label} (after {waited:.1f} s for quiet)",
                            file=sys.stderr,
                        )
                        loads[processes, query.key, connections, server.key] = load(
                            node, server, database, bodies[server.key], headers,
                            expected[server.key, query.key], connections, args.seconds,
                            args.warm, args.max_warm, scratch,
                        )  # fmt: skip
        finally:
            for server in running:
                server.stop()
    print_latency(latencies, labels, args.requests)
    print_loads(loads, labels, args)
    print(f"\nload average at the end: {_load_average()}; server logs in {logs}")


def _same_bodies(
    running: list[servers.Server], headers: dict[str, str], expected: dict[tuple[str, str], Path]
) -> None:
    with httpx.Client(timeout=TIMEOUT_SECONDS, headers=headers) as http:
        for query in queries.QUERIES:
            bodies = queries.requests(query, TIMELINE_ID)
            for server in running:
                response = http.post(server.url, json=bodies[server.key])
                if response.content != expected[server.key, query.key].read_bytes():
                    raise SystemExit(f"{server.label} answers {query.key} differently now")


def _load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


# -- printing ----------------------------------------------------------------------------


def print_latency(
    latencies: dict[tuple[str, str], tuple[float, float, int]],
    labels: dict[str, str],
    repeats: int,
) -> None:
    keys = list(labels)
    short = {k: labels[k].replace("PostGraphile ", "PG") for k in keys}
    print(f"\nsingle client, servers in turn: median and p99 of {repeats} requests, ms")
    print(f"{'':<11}" + "".join(f"{labels[k]:>20}" for k in keys) + f"{'median ratio':>22}")
    print(
        f"{'query':<11}"
        + f"{'median':>11}{'p99':>9}" * len(keys)
        + "".join(f"{'sg ÷ ' + short[k]:>11}" for k in keys[1:])
    )
    for query in queries.QUERIES:
        cells = []
        for key in keys:
            median, p99, bad = latencies[key, query.key]
            cells.append(f"{median:>11.1f}{p99:>9.1f}" + (f" ({bad} bad)" if bad else ""))
        ours = latencies["sessiongraph", query.key][0]
        ratios = [f"{ours / latencies[k, query.key][0]:>11.2f}" for k in keys[1:]]
        print(f"{query.key:<11}" + "".join(cells) + "".join(ratios))
    print("(ratio: sessiongraph's median over the peer's; below 1 sessiongraph is faster)")


def _ms(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def print_loads(
    loads: dict[tuple[int, str, int, str], Load], labels: dict[str, str], args: argparse.Namespace
) -> None:
    columns = (
        f"{'':<18}{'ok req/s':>10}{'bad':>6}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/req':>12}"
        f"{'PG ms/req':>11}{'RSS MiB':>9}{'client':>8}{'others':>8}{'warm s':>8}"
    )
    print(
        f"\nthroughput: autocannon, {args.seconds:g} s per run after its warm-up; CPU is per ok "
        "request (server process tree, PostgreSQL's), RSS the server tree's peak;\n"
        "client and others: cores used by autocannon and by everything else on the machine"
    )
    samples: list[str] = []
    cut_short = False
    for query in queries.QUERIES:
        print(f"\n{query.title}\n{columns}")
        for processes in args.processes:
            for connections in args.clients:
                noun = "process" if processes == 1 else "processes"
                print(f"{processes} {noun}, {connections} connections")
                rows = {k: loads[processes, query.key, connections, k] for k in labels}
                for key, row in rows.items():
                    print(
                        f"  {labels[key]:<16}{row.ok_per_second:>10.1f}{row.bad:>6}"
                        f"{_ms(row.p50, 0):>9}{_ms(row.p99, 0):>9}{_ms(row.server_ms):>12}"
                        f"{_ms(row.postgres_ms):>11}{row.rss_mib:>9.0f}{row.client_cores:>8.2f}"
                        f"{row.other_cores:>8.2f}{row.warm_seconds:>8.1f}"
                        + ("" if row.warm_complete else "*")
                    )
                    cut_short |= not row.warm_complete
                    if row.sample:
                        samples.append(f"{labels[key]} {query.key}: {row.sample}")
    if cut_short:
        print("* the warm-up reached its limit before every connection had an answer")
    print("\nsessiongraph's ok req/s ÷ each peer's (processes x connections)")
    settings = [(p, c) for p in args.processes for c in args.clients]
    print(f"{'':<28}" + "".join(f"{f'{p}p x {c}':>10}" for p, c in settings))
    for query in queries.QUERIES:
        for key in list(labels)[1:]:
            cells = []
            for p, c in settings:
                theirs = loads[p, query.key, c, key].ok_per_second
                ours = loads[p, query.key, c, "sessiongraph"].ok_per_second
                cells.append(f"{ours / theirs:>10.2f}" if theirs else f"{'—':>10}")
            print(f"{query.key + ' ÷ ' + labels[key]:<28}" + "".join(cells))
    for sample in samples[:6]:
        print(f"a bad response: {sample}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="5 s loads, 20 requests")
    parser.add_argument("--sessions", type=int, default=1000, help="demo sessions (1000)")
    parser.add_argument("--seconds", type=float, help="each load's window (12; quick 5)")
    parser.add_argument("--requests", type=int, help="single-client requests (50; quick 20)")
    parser.add_argument(
        "--clients", default="16,64", help="autocannon connections, comma-separated (16,64)"
    )
    parser.add_argument(
        "--processes", default="1,2", help="processes per server, comma-separated (1,2)"
    )
    args = parser.parse_args()
    args.seconds = args.seconds or (5.0 if args.quick else 12.0)
    args.requests = args.requests or (20 if args.quick else 50)
    args.warm = 1.0 if args.quick else 2.0
    args.max_warm = 30.0 if args.quick else 60.0
    args.clients = [int(n) for n in args.clients.split(",")]
    args.processes = [int(n) for n in args.processes.split(",")]

    node = servers.install_packages()
    # Always a server of our own: its processes' CPU time is measured, and it is seeded.
    os.environ.pop(URL_VARIABLE, None)
    started = time.monotonic()
    with throwaway_postgres(settings={"max_connections": "200"}) as url:
        database = asyncio.run(prepare(url, args.sessions))
        run(args, node, database)
    print(f"finished in {(time.monotonic() - started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
