"""Large responses against their lower bound: where the time of a GraphQL response goes.

    .venv/bin/python bench/response.py [--repeats 50] [--postgres | --database-url URL]

Seeds a SQLite database, or with ``--postgres`` a throwaway PostgreSQL server (the
demo data, plus one session of 600 operations for the timeline; a given database gets
the timeline session only), then for each standard query measures, in one run, the
median of ``--repeats`` requests after a warm-up. The variants take turns (one
request of each per round), so a slow moment of the machine falls on all alike:

  a   sessiongraph end to end over HTTP, against a real `sessiongraph serve`
  b   sessiongraph in-process: schema execution including its SQL, no HTTP
  c   the lower bound in-process: the very SQL sessiongraph sent (recorded), run
      directly, and the same response built by hand and serialized with orjson
  ch  the same lower bound served by a minimal Starlette endpoint on uvicorn
  b plain  b with the compiled execution path off

and prints a/ch and b/c, with where the time goes: the SQL alone, the rest of
sessiongraph's execution, and the JSON serialization of its result. Before timing,
each hand-built response is checked to be exactly sessiongraph's.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from sessiongraph import display
from sessiongraph.config import Settings
from sessiongraph.db import migrate
from sessiongraph.db.engine import create_engine
from sessiongraph.db.tables import operations, sessions
from sessiongraph.events import Broker
from sessiongraph.graphql.context import Context
from sessiongraph.graphql.cursors import CursorCodec
from sessiongraph.graphql.scalars import serialize_datetime, serialize_decimal, serialize_json
from sessiongraph.graphql.schema import Schema, build_schema
from sessiongraph.graphql.view import dumps
from sessiongraph.seed import seed_demo_data
from sessiongraph.stored import tool_input_object

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.postgres import throwaway_postgres

TIMELINE_ID = "bench-timeline-0000-0000-000000000600"

DASHBOARD = """{ sessions(first: 50) { totalCount nodes {
  id status workflowName phaseDisplay agentModel agentModelDisplay reposDisplay
  inputTokensDisplay outputTokensDisplay totalTokens totalTokensDisplay totalCostUsd
  totalCostDisplay startedAt completedAt durationSeconds durationDisplay errorMessage
  operationCount } } }"""
LIGHT = "operationId operationType timestamp toolName success durationSeconds"
HEAVY = LIGHT + " toolInput toolOutput messageContent thinkingContent"
TIMELINE = (
    "query ($id: String!) { session(id: $id) { id operations(first: 500) { nodes { "
    + LIGHT
    + " } } } }"
)
TIMELINE_HEAVY = TIMELINE.replace(LIGHT, HEAVY)
BFF = (
    "{ sessions(first: 200) { nodes { id operations(first: 50) { nodes { "
    "operationId operationType toolName timestamp success durationSeconds } } } } }"
)

QUERIES: dict[str, tuple[str, dict[str, Any]]] = {
    "dashboard (50)": (DASHBOARD, {}),
    "timeline (500)": (TIMELINE, {"id": TIMELINE_ID}),
    "timeline+heavy": (TIMELINE_HEAVY, {"id": TIMELINE_ID}),
    "bff (200x50)": (BFF, {}),
}


# -- the lower bound: recorded SQL, run directly, and the response built by hand -------


Recorded = list[tuple[str, Any]]


async def run_sql(engine: AsyncEngine, recorded: Recorded) -> list[list[Any]]:
    async with engine.connect() as conn:
        return [
            (await conn.exec_driver_sql(statement, params)).mappings().all()
            for statement, params in recorded
        ]


def _kind(statement: str) -> str:
    head = statement.split("FROM", 1)[0]
    if "string_agg" in head:
        return "operations as json"
    if "read_ahead" in statement:  # a page of sessions with what it reads along
        return "sessions"
    if "count(" in head:
        return "count"
    if "workflows" in statement.split("WHERE", 1)[0] and "sessions" not in head:
        return "workflows"
    if "operations." in head or "json_each" in statement or "unnest" in statement:
        return "operations"
    return "sessions"


def _operation(row: Any, heavy: bool) -> dict[str, Any]:
    result = {
        "operationId": row["operation_id"],
        "operationType": row["operation_type"],
        "timestamp": _iso(row["timestamp"]),
        "toolName": row["tool_name"],
        "success": bool(row["success"]),
        "durationSeconds": row["duration_seconds"],
    }
    if heavy:
        tool_input = tool_input_object(_json(row["tool_input"]))
        result["toolInput"] = serialize_json(tool_input) if tool_input is not None else None
        result["toolOutput"] = row["tool_output"]
        result["messageContent"] = row["message_content"]
        result["thinkingContent"] = row["thinking_content"]
    return result


def build(name: str, recorded: Recorded, results: list[list[Any]]) -> dict[str, Any]:
    by_kind: dict[str, list[Any]] = {}
    for (statement, _), rows in zip(recorded, results, strict=True):
        by_kind.setdefault(_kind(statement), []).extend(rows)
    sessions = by_kind["sessions"]
    # Pages PostgreSQL wrote as JSON go into the response as they are.
    written = {
        session_id: orjson.Fragment(text)
        for session_id, text, _fits in (
            tuple(row.values()) for row in by_kind.get("operations as json", [])
        )
    }
    if name.startswith("timeline"):
        heavy = "heavy" in name
        ops: Any = [_operation(row, heavy) for row in by_kind.get("operations", [])[:500]]
        ops = written.get(sessions[0]["id"], ops)
        return {"session": {"id": sessions[0]["id"], "operations": {"nodes": ops}}}
    if name.startswith("bff"):
        pages: dict[str, Any] = {}
        for row in by_kind.get("operations", []):
            page = pages.setdefault(row["session_id"], [])
            if len(page) < 50:
                page.append(_operation(row, False))
        pages.update(written)
        nodes = [
            {"id": s["id"], "operations": {"nodes": pages.get(s["id"], [])}} for s in sessions[:200]
        ]
        return {"sessions": {"nodes": nodes}}
    names = {row["id"]: row["name"] for row in by_kind.get("workflows", [])}
    counts: dict[str, int] = {}
    total = 0
    for row in by_kind.get("count", []):
        if "session_id" in row:
            counts[row["session_id"]] = row["count"]
        else:
            total = next(iter(row.values()))
    for row in sessions:  # what the page's statement read along
        if "read_ahead_workflow_name" in row:
            names[row["workflow_id"]] = row["read_ahead_workflow_name"]
        if "operation_count" in row:  # a column of the session
            counts[row["id"]] = row["operation_count"]
        if "read_ahead_total" in row:
            total = row["read_ahead_total"]
    nodes = []
    for s in sessions[:50]:
        cost = s["total_cost_usd"]
        nodes.append(
            {
                "id": s["id"],
                "status": s["status"].upper(),
                "workflowName": names.get(s["workflow_id"]),
                "phaseDisplay": display.format_phase(s["phase_id"]),
                "agentModel": s["agent_model"],
                "agentModelDisplay": display.format_model_compact(s["agent_model"]),
                "reposDisplay": display.format_repos(_json(s["repos"]) or None),
                "inputTokensDisplay": display.format_tokens(s["input_tokens"]),
                "outputTokensDisplay": display.format_tokens(s["output_tokens"]),
                "totalTokens": s["total_tokens"],
                "totalTokensDisplay": display.format_tokens(s["total_tokens"]),
                "totalCostUsd": serialize_decimal(_decimal(cost)),
                "totalCostDisplay": display.format_cost(_decimal(cost)),
                "startedAt": _iso(s["started_at"]),
                "completedAt": _iso(s["completed_at"]),
                "durationSeconds": s["duration_seconds"],
                "durationDisplay": display.format_duration_seconds(s["duration_seconds"]),
                "errorMessage": s["error_message"],
                "operationCount": counts.get(s["id"], 0),
            }
        )
    return {"sessions": {"totalCount": total, "nodes": nodes}}


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _decimal(value: Any) -> Any:
    from decimal import Decimal

    return Decimal(str(value))


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite stores fixed-width ISO text
        value = datetime.fromisoformat(value)
    return serialize_datetime(value)


async def lower_bound(engine: AsyncEngine, name: str, recorded: Recorded) -> bytes:
    return orjson.dumps({"data": build(name, recorded, await run_sql(engine, recorded))})


# -- sessiongraph in-process ------------------------------------------------------------


def make_context(engine: AsyncEngine, settings: Settings) -> Context:
    return Context.create(
        engine, settings, CursorCodec(settings.cursor_secret), Broker(capacity=1), None
    )


_schemas: dict[bool, Schema] = {}


def schema_for(settings: Settings) -> Schema:
    """One schema per execution path, built once (as an app builds its own)."""
    compiled = settings.compiled_execution
    if compiled not in _schemas:
        _schemas[compiled] = build_schema(settings)
    return _schemas[compiled]


async def in_process(engine: AsyncEngine, settings: Settings, query: str, variables: Any) -> Any:
    result = await schema_for(settings).execute(
        query, variable_values=variables, context_value=make_context(engine, settings)
    )
    assert not result.errors, result.errors
    return result.data


async def record(engine: AsyncEngine, settings: Settings, query: str, variables: Any) -> Recorded:
    seen: Recorded = []

    def listener(_c: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        seen.append((statement, params))

    sa.event.listen(engine.sync_engine, "before_cursor_execute", listener)
    try:
        await in_process(engine, settings, query, variables)
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", listener)
    return seen


# -- timing -----------------------------------------------------------------------------


async def interleaved_medians_ms(
    variants: dict[str, Callable[[], Awaitable[Any]]], repeats: int
) -> dict[str, float]:
    """The median time of each variant, run in turns (one of each per round) so that the
    machine's slow moments fall on all of them alike and their ratios hold."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(repeats + 3):  # the first three rounds warm up
        for name, work in variants.items():
            started = time.perf_counter()
            await work()
            if round_ >= 3:
                times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) * 1000 for name, values in times.items()}


async def _dumps(data: Any) -> bytes:
    return dumps({"data": data})  # as the server serializes it


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONGRAPH_")}
    with log.open("wb") as output:
        return subprocess.Popen(args, env=env, stdout=output, stderr=subprocess.STDOUT)


async def _healthy(base: str, path: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=2) as http:
        for _ in range(300):
            try:
                if (await http.get(path)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"{base} did not come up")


# -- the minimal Starlette endpoint serving the lower bound ------------------------------


def serve_floor(database_url: str, port: int, recorded_file: Path) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    recordings: dict[str, Recorded] = {
        name: [(s, tuple(p) if isinstance(p, list) else p) for s, p in items]
        for name, items in json.loads(recorded_file.read_text()).items()
    }
    engine = create_engine(Settings(database_url=database_url))

    async def endpoint(request: Request) -> Response:
        name = (await request.json())["name"]
        return Response(
            await lower_bound(engine, name, recordings[name]), media_type="application/json"
        )

    async def health(_request: Request) -> Response:
        return Response(b"ok")

    app = Starlette(routes=[Route("/floor", endpoint, methods=["POST"]), Route("/health", health)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# -- the run ----------------------------------------------------------------------------


async def seed_timeline(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(sessions.delete().where(sessions.c.id == TIMELINE_ID))
        await conn.execute(
            sessions.insert(),
            {
                "id": TIMELINE_ID,
                "status": "running",
                "repos": [],
                "input_tokens": 0,
                "output_tokens": 0,
                "cache_creation_tokens": 0,
                "cache_read_tokens": 0,
                "total_tokens": 0,
                "total_cost_usd": 0,
                "cost_by_model": {},
                "metadata": {},
                "started_at": datetime(2026, 4, 18, 8, tzinfo=UTC),
            },
        )
        start = datetime(2026, 4, 18, 8, tzinfo=UTC)
        await conn.execute(
            operations.insert(),
            [
                {
                    "operation_id": f"bench-op-{n:04d}",
                    "session_id": TIMELINE_ID,
                    "operation_type": "tool_execution_completed" if n % 2 else "message_response",
                    "timestamp": start + timedelta(seconds=n),
                    "duration_seconds": n / 10,
                    "success": n % 7 != 0,
                    "tool_name": "Bash" if n % 2 else None,
                    "tool_input": {"command": f"pytest -k case_{n}", "timeout": 60},
                    "tool_output": f"{n} passed " * 40,
                    "message_role": "assistant",
                    "message_content": "The tests pass after the change. " * 12,
                    "thinking_content": "Consider the failing case first. " * 18,
                }
                for n in range(600)
            ],
        )


async def main_async(args: argparse.Namespace, scratch: Path, url: str, fresh: bool) -> None:
    settings = Settings(database_url=url)
    plain = settings.model_copy(update={"compiled_execution": False})
    engine = create_engine(settings)
    if fresh:
        await migrate.upgrade(engine)
        await seed_demo_data(engine)
    await seed_timeline(engine)
    if engine.dialect.name == "postgresql":  # statistics and visibility, as autovacuum would
        async with engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.exec_driver_sql("VACUUM ANALYZE")

    recordings = {name: await record(engine, settings, q, v) for name, (q, v) in QUERIES.items()}
    for name, (query, variables) in QUERIES.items():
        expected = await in_process(engine, settings, query, variables)
        built = orjson.loads(await lower_bound(engine, name, recordings[name]))["data"]
        if built != orjson.loads(dumps(expected)):
            raise SystemExit(f"{name}: the hand-built response differs from sessiongraph's")
    recorded_file = scratch / "recorded.json"
    recorded_file.write_text(json.dumps(recordings, default=list))
    # As `sessiongraph serve` does once its app is built (and the floor's server has
    # next to nothing to walk): what lives on is kept out of full collections.
    gc.collect()
    gc.freeze()

    port, floor_port = _free_port(), _free_port()
    server = _spawn(
        [sys.executable, "-m", "sessiongraph", "serve", "--port", str(port), "--database-url",
         url, "--log-level", "warning"],
        scratch / "serve.log",
    )  # fmt: skip
    floor = _spawn(
        [sys.executable, __file__, "--serve-floor", str(floor_port), "--database-url", url,
         "--recorded", str(recorded_file)],
        scratch / "floor.log",
    )  # fmt: skip
    rows = []
    try:
        await _healthy(f"http://127.0.0.1:{port}", "/healthz")
        await _healthy(f"http://127.0.0.1:{floor_port}", "/health")
        async with httpx.AsyncClient(timeout=60) as http:
            for name, (query, variables) in QUERIES.items():
                recorded = recordings[name]
                body = {"query": query, "variables": variables}
                data = await in_process(engine, settings, query, variables)
                variants: dict[str, Callable[[], Awaitable[Any]]] = {
                    "a": lambda body=body: http.post(f"http://127.0.0.1:{port}/graphql", json=body),
                    "ch": lambda name=name: http.post(
                        f"http://127.0.0.1:{floor_port}/floor", json={"name": name}
                    ),
                    "b": lambda q=query, v=variables: in_process(engine, settings, q, v),
                    "b plain": lambda q=query, v=variables: in_process(engine, plain, q, v),
                    "c": lambda n=name, r=recorded: lower_bound(engine, n, r),
                    "sql": lambda r=recorded: run_sql(engine, r),
                    "json": lambda d=data: _dumps(d),
                }
                medians = await interleaved_medians_ms(variants, args.repeats)
                rows.append(
                    (name, *(medians[k] for k in ("a", "ch", "b", "c", "sql", "json", "b plain")))
                )
    finally:
        for process in (server, floor):
            process.terminate()
            process.wait(timeout=10)
        await engine.dispose()

    print(f"\nmedians of {args.repeats} runs, ms ({url.split('://')[0]})")
    header = (
        f"{'query':<16}{'a http':>9}{'ch floor':>10}{'a/ch':>7}{'b proc':>9}{'c floor':>9}"
        f"{'b/c':>7}   {'sql':>7}{'exec':>8}{'json':>7}   {'b plain':>8}{'b/plain':>8}"
    )
    print(header)
    for name, a, ch, b, c, sql, serialize, b_off in rows:
        print(
            f"{name:<16}{a:>9.1f}{ch:>10.1f}{a / ch:>7.1f}{b:>9.1f}{c:>9.1f}{b / c:>7.1f}   "
            f"{sql:>7.1f}{b - sql:>8.1f}{serialize:>7.1f}   {b_off:>8.1f}{b / b_off:>8.2f}"
        )
    print(
        "\na: sessiongraph over HTTP (real uvicorn)   ch: lower bound on a minimal Starlette "
        "endpoint\nb: sessiongraph in-process   c: lower bound in-process (same SQL + orjson)"
        "\nsql: the recorded SQL alone   exec: b - sql   json: b's result serialized (orjson)"
        "\nb plain: b with the compiled path off (SESSIONGRAPH_COMPILED_EXECUTION=false)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--database-url", help="an existing database (default: a new SQLite)")
    parser.add_argument(
        "--postgres", action="store_true", help="a throwaway PostgreSQL server, seeded"
    )
    parser.add_argument("--serve-floor", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--recorded", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_floor is not None:
        serve_floor(args.database_url, args.serve_floor, args.recorded)
        return
    with tempfile.TemporaryDirectory() as scratch:
        if args.postgres:
            with throwaway_postgres() as url:
                asyncio.run(main_async(args, Path(scratch), url, fresh=True))
        elif args.database_url:
            asyncio.run(main_async(args, Path(scratch), args.database_url, fresh=False))
        else:
            url = f"sqlite+aiosqlite:///{Path(scratch) / 'bench.db'}"
            asyncio.run(main_async(args, Path(scratch), url, fresh=True))


if __name__ == "__main__":
    main()
