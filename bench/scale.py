"""Does query time stay flat as the data grows? The PostgreSQL scale benchmark.

    .venv/bin/python bench/scale.py [--sizes 10000,100000,1000000] [--repeats 30]
                                    [--bff-repeats 10] [--quick] [--keep] [--seed 1]
                                    [--suite all|standard|stats] [--sqlite]
                                    [--heap-order time|random] [--only TEXT]

Starts one throwaway PostgreSQL server from the installed binaries (or uses
``SESSIONGRAPH_TEST_POSTGRES_URL``), and for each size:

1. creates a fresh database, migrates it (``migrate.upgrade``) and fills it with
   COPY: secondary indexes and constraints are dropped before the load and
   rebuilt after it, then VACUUM ANALYZE. ~20 operations per session up to
   100k sessions, ~5 at 1M. Every dataset also holds the same 200 "bulk"
   sessions (own workflow, 60-80 operations each, 5 of them with 520), so the
   detail and BFF queries read the same amount of data at every size.
   ``started_at`` is uniform over the 90 days before the moment the dataset is
   generated, so ``lastSeconds`` windows (relative to the database clock) hold
   their share of it: the last 24 h ~1/90 of the sessions, 30 days ~1/3. Rows
   are generated in ``started_at`` order, as sessions are written when they
   start, and the sessions table is clustered on it after the counters' UPDATE
   (``--heap-order random`` scatters them: every row of a window then
   sits on its own page, the worst case for a window's heap reads). Costs
   run from $0 to ~$10 (~$2.40 on average), in steps of $0.0001;
2. once every size is loaded (each database keeps its app open), times the
   GraphQL queries through the app in-process (httpx ASGI transport, POST
   /graphql, no ``errors`` allowed): p50 and p95 over N runs after a warm-up,
   the sizes taking turns request by request, so a slow moment of the machine
   falls on all sizes alike and the ratios between them hold on a busy
   machine; recording the SQL each query sends. The recorded
   statements are then timed alone on asyncpg (prepared, like the app's
   driver), and the shared buffers they touch are counted with EXPLAIN
   ANALYZE: the same work at every size is the noise-free sign of flat cost;
3. on the largest size, runs ``EXPLAIN (ANALYZE, BUFFERS)`` on every recorded
   statement with its recorded parameters (and once more as a generic plan, the
   kind a prepared statement may switch to after five runs) and summarises
   which scans the plans use, flagging index scans whose Filter throws away
   thousands of rows.

``--suite`` picks the queries: ``standard`` (lists, orders, deep cursors,
detail, BFF), ``stats`` (issue 13's dashboard queries, below) or ``all``.
The stats queries are timed one ``sessionStats`` field per request, each in
three scopes — no filter, ``workflowId: {eq: "wf-triage"}`` (~30 % of the
sessions), ``status: [COMPLETED]`` (~70 %):

- the last 24 h (``startedAt: {lastSeconds: 86400}``): ``count``, ``byStatus``,
  ``totals``, ``duration { p50Seconds p95Seconds }``, ``timeSeries(bucket: HOUR)``;
- the last 30 days and all time: ``count``, ``byStatus``, ``totals``,
  ``costByModel``, ``timeSeries(bucket: DAY)``;
- exact percentiles over 30 days: ``duration { p50Seconds p95Seconds p99Seconds }``;
- a composed-filter list: ``sessions(first: 50, filter: {or: [two agentModel eq],
  totalCostUsd: {gte: "1", lt: "10"}, hasOperation: {gitBranch: {eq: "main"}}})``.

``--only TEXT`` times only the cases whose name contains TEXT (``--only p99``:
the 30-day percentiles), on every size.

``--sqlite`` runs the stats queries on a SQLite file instead (default
``--sizes 100000``; ``--quick`` 2000,20000), loaded from the same generator with
batched inserts, secondary indexes dropped and rebuilt, then ANALYZE; it
prints the end-to-end table and ``EXPLAIN QUERY PLAN`` of every statement on
the largest size. No PostgreSQL server is started.

It ends with three tables (end to end, SQL only, buffers) per query and size,
with the ratio of the largest size to the smallest; ratios above 1.5 are
marked, those that grow with the data by design (COUNTs, the last 24 h, the
percentiles) as such. Deep cursors are made with the
app's own cursor codec (same secret) from a row picked in the middle of each
order, so they sit half-way into the table at every size; one more cursor is
reached by walking 100 pages with ``after``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import json
import math
import os
import random
import re
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import sqlalchemy as sa

from sessiongraph.app import create_app
from sessiongraph.config import Settings
from sessiongraph.db import migrate
from sessiongraph.db.engine import create_engine, server_settings
from sessiongraph.db.queries import Keyset
from sessiongraph.graphql.cursors import CursorCodec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.postgres import throwaway_postgres

#: Their backfills sum the loaded sessions into the rollups: hours and days, then months.
ROLLUPS_MIGRATIONS = [
    importlib.import_module(f"sessiongraph.db.migrations.versions.{name}")
    for name in ("0003_session_rollups", "0004_month_rollups")
]

# --- the server -------------------------------------------------------------

#: For a 2-core, 24 GiB machine. Autovacuum is off: every load ends with an
#: explicit VACUUM ANALYZE, and a background vacuum would only add noise.
SERVER_SETTINGS = {
    "shared_buffers": "512MB",
    "work_mem": "32MB",
    "maintenance_work_mem": "512MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "30min",
    "effective_cache_size": "8GB",
    "max_parallel_maintenance_workers": "2",
    "autovacuum": "off",
}

CURSOR_SECRET = "scale-benchmark-cursor-secret"

# --- the data -----------------------------------------------------------------

SPREAD_SECONDS = 90 * 86400  # started_at is uniform over the 90 days before ANCHOR
#: The end of the data: "now" when a dataset is generated (``set_anchor``), because
#: ``lastSeconds`` windows are relative to the database clock when a query runs.
ANCHOR = datetime.now(UTC).replace(microsecond=0)
ANCHOR_TS = ANCHOR.timestamp()
WINDOW_START = ANCHOR - timedelta(hours=24)


#: Whether sessions are generated (and so stored) in ``started_at`` order.
TIME_ORDERED = True


def set_anchor(at: datetime) -> None:
    """Ends the next dataset's 90 days at ``at`` (whole seconds)."""
    global ANCHOR, ANCHOR_TS, WINDOW_START
    ANCHOR = at.replace(microsecond=0)
    ANCHOR_TS = ANCHOR.timestamp()
    WINDOW_START = ANCHOR - timedelta(hours=24)


WORKFLOWS = [
    ("wf-triage", "Issue triage"),
    ("wf-bugfix", "Bug fix"),
    ("wf-feature", "Feature implementation"),
    ("wf-review", "Code review"),
    ("wf-docs", "Documentation refresh"),
]
BULK_WORKFLOW = ("wf-bulk-export", "Bulk export")
#: Sessions of the bulk workflow in every dataset: 200 for the BFF query...
BULK_SESSIONS = 200
#: ...of which the first few have BIG_OPS operations, for the detail query.
BIG_SESSIONS = 5
BIG_OPS = 520

#: Session status by weight (percent).
STATUS_TABLE = [
    status
    for status, weight in (
        ("completed", 70),
        ("failed", 10),
        ("running", 7),
        ("cancelled", 6),
        ("pending", 7),
    )
    for _ in range(weight)
]
#: Workflow of a regular session; 2 in 100 have none.
WORKFLOW_TABLE: list[str | None] = [
    wf for wf, weight in zip((w[0] for w in WORKFLOWS), (30, 25, 20, 15, 8), strict=True)
    for _ in range(weight)
] + [None, None]  # fmt: skip
MODELS = ["claude-sonnet-4-6", "claude-sonnet-4-6", "claude-opus-4-7", "claude-haiku-4-5", "gpt-5"]
PROVIDERS = {"gpt-5": "openai"}
PHASES = ["detect", "research_phase", "implement", "fix-bug", "review", "39574120-df6e-4043"]
REPOS_JSON = [
    '["acme/api"]',
    '["acme/web"]',
    '["acme/api", "acme/web"]',
    '["acme/infra"]',
    '["acme/mobile", "acme/api", "acme/shared"]',
    "[]",
]
METADATA_JSON = [
    "{}",
    '{"trigger": "schedule"}',
    '{"trigger": "webhook", "attempt": 2}',
    '{"trigger": "manual", "user": "ops@example.com", "labels": ["urgent", "backend"]}',
]
ERRORS = ["Tool execution timed out", "Rate limited by provider", "Workspace setup failed"]
TOOLS = ["Bash", "Read", "Edit", "Write", "Grep", "Glob", "Task", "WebFetch"]
MISC_TYPES = [
    "user_prompt_submitted",
    "context_compacted",
    "permission_requested",
    "subagent_started",
    "subagent_stopped",
    "phase_started",
    "phase_completed",
    "security_decision",
    "tool_blocked",
]
WORDS = [
    "the", "agent", "reads", "files", "runs", "tests", "edits", "code", "and", "commits",
    "changes", "while", "tracking", "tokens", "cost", "time", "for", "every", "step", "of",
    "session", "including", "retries", "errors", "src/app/main.py", "{", "}", "=>", "42",
]  # fmt: skip

SESSION_COLUMNS = [
    "id", "workflow_id", "execution_id", "phase_id", "milestone_id", "status",
    "agent_provider", "agent_model", "repos", "workspace_path", "input_tokens",
    "output_tokens", "cache_creation_tokens", "cache_read_tokens", "total_tokens",
    "total_cost_usd", "cost_by_model", "started_at", "completed_at", "duration_seconds",
    "error_message", "metadata", "updated_at",
]  # fmt: skip
OPERATION_COLUMNS = [
    "id", "operation_id", "session_id", "operation_type", "timestamp", "duration_seconds",
    "success", "input_tokens", "output_tokens", "total_tokens", "tool_name", "tool_use_id",
    "tool_input", "tool_output", "message_role", "message_content", "thinking_content", "git",
]  # fmt: skip

#: What the operations generator needs of a session: id, status, start, span, count.
SessionPlan = tuple[str, str, float, float, int]
Row = tuple[Any, ...]


def say(text: str = "") -> None:
    print(text, flush=True)


def _text(rng: random.Random, low: int, high: int) -> str:
    size = rng.randint(low, high)
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < size:
        words.append(rng.choice(WORDS))
    return " ".join(words)[:size]


@dataclass
class Pools:
    """Pre-made heavy payloads (a few hundred bytes each), picked at random per row."""

    tool_inputs: list[str]
    tool_outputs: list[str]
    messages: list[str]
    thinking: list[str]
    gits: list[str]

    @classmethod
    def make(cls, rng: random.Random) -> Pools:
        return cls(
            tool_inputs=[
                json.dumps({"command": _text(rng, 40, 300), "description": _text(rng, 20, 80)})
                for _ in range(64)
            ],
            tool_outputs=[_text(rng, 100, 700) for _ in range(64)],
            messages=[_text(rng, 100, 800) for _ in range(64)],
            thinking=[_text(rng, 200, 900) for _ in range(64)],
            gits=[
                json.dumps(
                    {
                        "operation": "commit",
                        "sha": f"{rng.getrandbits(160):040x}",
                        "branch": rng.choice(["main", "fix/login", "feat/export"]),
                        "repo": "acme/api",
                        "message": _text(rng, 20, 70),
                        "files_changed": rng.randint(1, 12),
                        "insertions": rng.randint(1, 400),
                        "deletions": rng.randint(0, 200),
                    }
                )
                for _ in range(32)
            ],
        )


class Progress:
    def __init__(self, what: str, total: int) -> None:
        self.what, self.total, self.done = what, total, 0
        self.started = time.perf_counter()
        self._next = max(total // 10, 1)
        self._reported = -1

    def tick(self, n: int = 1) -> None:
        self.done += n
        if self.done >= self._next:
            self._next += max(self.total // 10, 1)
            self.report()

    def report(self) -> None:
        if self._reported == self.done:
            return
        self._reported = self.done
        elapsed = time.perf_counter() - self.started
        say(
            f"    {self.what}: {self.done:>10,} / ~{self.total:,}"
            f"  {self.done / max(elapsed, 1e-9):>9,.0f} rows/s  {elapsed:6.1f} s"
        )


#: The sessions' counters and tool usage, counted from the copied operations at once.
COUNT_OPERATIONS = """
UPDATE sessions SET
    operation_count = counted.operations, tool_call_count = counted.tool_calls,
    failed_operation_count = counted.failed, subagent_count = counted.subagents,
    commit_count = counted.commits
FROM (
    SELECT session_id, count(*) AS operations,
        count(*) FILTER (WHERE operation_type IN
            ('tool_execution_completed', 'tool_execution_failed', 'tool_blocked')) AS tool_calls,
        count(*) FILTER (WHERE NOT success) AS failed,
        count(*) FILTER (WHERE operation_type = 'subagent_started') AS subagents,
        count(*) FILTER (WHERE operation_type = 'git_commit') AS commits
    FROM operations GROUP BY session_id
) AS counted
WHERE sessions.id = counted.session_id;
INSERT INTO session_tools
    (session_id, tool_name, calls, failures, total_duration_seconds, duration_count)
SELECT session_id, tool_name, count(*),
    count(*) FILTER (WHERE operation_type <> 'tool_execution_completed' OR NOT success),
    coalesce(sum(duration_seconds), 0), count(duration_seconds)
FROM operations
WHERE operation_type IN ('tool_execution_completed', 'tool_execution_failed', 'tool_blocked')
    AND tool_name IS NOT NULL
GROUP BY session_id, tool_name;
"""


async def session_rows(
    size: int, ops_range: tuple[int, int], rng: random.Random, plans: list[SessionPlan]
) -> AsyncIterator[Row]:
    """``size`` session rows; appends each one's plan for the operations generator."""
    r, bits, fromts = rng.random, rng.getrandbits, datetime.fromtimestamp
    low, high = ops_range
    zero = Decimal(0)
    progress = Progress("sessions", size)
    for i in range(size):
        sid = str(uuid.UUID(int=bits(128), version=4))
        workflow: str | None
        if i < BULK_SESSIONS:
            workflow, status = BULK_WORKFLOW[0], "completed"
            n_ops = BIG_OPS if i < BIG_SESSIONS else 60 + int(r() * 21)
        else:
            workflow = WORKFLOW_TABLE[int(r() * len(WORKFLOW_TABLE))]
            status = STATUS_TABLE[int(r() * len(STATUS_TABLE))]
            n_ops = 0 if status == "pending" else low + int(r() * (high - low + 1))
        model = MODELS[int(r() * len(MODELS))]
        if status == "pending":
            started = completed = duration = None
            tokens = (0, 0, 0, 0)
            cost, cost_json = zero, "{}"
            start_ts, span = ANCHOR_TS, 0.0
        else:
            # In time order (strata of SPREAD_SECONDS / size), as sessions are
            # written when they start; random order leaves every row of a time
            # window on its own page. --heap-order random keeps that worst case.
            slot = i if TIME_ORDERED else int(r() * size)
            start_ts = ANCHOR_TS - SPREAD_SECONDS + (slot + r()) * SPREAD_SECONDS / size
            started = fromts(start_ts, UTC)
            if status == "running":
                completed, duration, span = None, None, 600.0
            else:
                duration = round(5 + r() * r() * 7200, 1)  # 0.1 s steps: ties
                completed, span = fromts(start_ts + duration, UTC), duration
            # Token counts in steps of 100 and costs in 1/10000 dollars: many ties.
            tokens = (
                int(r() * r() * 4000) * 100,
                int(r() * r() * 1000) * 100,
                int(r() * 500) * 100,
                int(r() * r() * 20000) * 100,
            )
            cost = Decimal(sum(tokens) // 25).scaleb(-4)  # $0-10, ~$2.4 on average
            cost_json = f'{{"{model}": "{cost}"}}'
        plans.append((sid, status, start_ts, span, n_ops))
        yield (
            sid,
            workflow,
            f"exec-{i:08d}",
            PHASES[int(r() * len(PHASES))],
            f"m-{int(r() * 40):02d}" if r() < 0.3 else None,
            status,
            PROVIDERS.get(model, "claude"),
            model,
            REPOS_JSON[int(r() * len(REPOS_JSON))],
            f"/workspaces/{sid[:8]}",
            *tokens,
            sum(tokens),
            cost,
            cost_json,
            started,
            completed,
            duration,
            ERRORS[int(r() * len(ERRORS))] if status == "failed" else None,
            METADATA_JSON[int(r() * len(METADATA_JSON))],
            completed or started or ANCHOR,
        )
        progress.tick()
    progress.report()


async def operation_rows(
    plans: Sequence[SessionPlan], rng: random.Random, pools: Pools
) -> AsyncIterator[Row]:
    """Each planned session's operations, timestamps increasing within the session."""
    r, fromts = rng.random, datetime.fromtimestamp
    tin, tout, msgs, think, gits = (
        pools.tool_inputs,
        pools.tool_outputs,
        pools.messages,
        pools.thinking,
        pools.gits,
    )
    op_id = 0
    progress = Progress("operations", sum(p[4] for p in plans))
    for sid, status, start_ts, span, n_ops in plans:
        if n_ops == 0:
            continue
        step = span / (n_ops + 1)
        t = start_ts
        end_type = {"completed": "session_completed", "failed": "session_error"}.get(
            status, "session_completed" if status == "cancelled" else ""
        )
        made = 0
        while made < n_ops:
            t += r() * 2 * step
            op_id += 1
            left = n_ops - made
            ts = fromts(t, UTC)
            if made == 0:
                row: Row = (op_id, f"op-{op_id:010d}", sid, "session_started", ts,
                            None, True, None, None, None, None, None, None, None, None, None,
                            None, None)  # fmt: skip
                yield row
                made += 1
                continue
            if left == 1 and end_type:
                yield (op_id, f"op-{op_id:010d}", sid, end_type, ts, None, status != "failed",
                       None, None, None, None, None, None, None, None, None, None,
                       None)  # fmt: skip
                made += 1
                continue
            kind = r()
            if kind < 0.6 and left >= 2:  # a tool call: started + completed/failed
                tool = TOOLS[int(r() * len(TOOLS))]
                use_id = f"toolu_{op_id:012x}"
                yield (op_id, f"op-{op_id:010d}", sid, "tool_execution_started", ts, None,
                       True, None, None, None, tool, use_id, tin[int(r() * 64)], None, None,
                       None, None, None)  # fmt: skip
                op_id += 1
                t += r() * step
                ok = r() > 0.04
                yield (op_id, f"op-{op_id:010d}", sid,
                       "tool_execution_completed" if ok else "tool_execution_failed",
                       fromts(t, UTC), round(r() * r() * 30, 3), ok, None, None, None, tool,
                       use_id, None, tout[int(r() * 64)] if r() < 0.7 else None, None, None,
                       None, None)  # fmt: skip
                made += 2
            elif kind < 0.8 and left >= 2:  # a model round trip
                yield (op_id, f"op-{op_id:010d}", sid, "message_request", ts, None, True,
                       None, None, None, None, None, None, None, "user",
                       msgs[int(r() * 64)] if r() < 0.3 else None, None, None)  # fmt: skip
                op_id += 1
                t += r() * step
                inp, out = int(r() * 20000), int(r() * 4000)
                yield (op_id, f"op-{op_id:010d}", sid, "message_response", fromts(t, UTC),
                       round(r() * 40, 3), True, inp, out, inp + out, None, None, None, None,
                       "assistant", msgs[int(r() * 64)], None, None)  # fmt: skip
                made += 2
            elif kind < 0.88:
                yield (op_id, f"op-{op_id:010d}", sid, "thinking", ts, None, True, None, None,
                       None, None, None, None, None, None, None, think[int(r() * 64)],
                       None)  # fmt: skip
                made += 1
            elif kind < 0.93:
                yield (op_id, f"op-{op_id:010d}", sid, "git_commit", ts, None, True, None,
                       None, None, None, None, None, None, None, None, None,
                       gits[int(r() * 32)])  # fmt: skip
                made += 1
            else:  # a lifecycle event; a few have lost their timestamp
                yield (op_id, f"op-{op_id:010d}", sid, MISC_TYPES[int(r() * len(MISC_TYPES))],
                       ts if r() > 0.02 else None, None, True, None, None, None, None, None,
                       None, None, None, None, None, None)  # fmt: skip
                made += 1
        progress.tick(n_ops)
    progress.report()


# --- loading --------------------------------------------------------------------


@dataclass
class LoadReport:
    sessions: int = 0
    operations: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.timings.values())


async def _secondary_ddl(conn: asyncpg.Connection) -> tuple[list[str], list[str], list[str]]:
    """(drop statements, index/unique DDL, foreign-key DDL) of the loaded tables."""
    drops: list[str] = []  # foreign keys first: they depend on the unique indexes
    builds: list[str] = []
    foreign: list[str] = []
    constraints = await conn.fetch(
        """SELECT c.conrelid::regclass::text AS tbl, c.conname, c.contype::text AS contype,
                  pg_get_constraintdef(c.oid) AS def
           FROM pg_constraint c
           WHERE c.conrelid IN ('sessions'::regclass, 'operations'::regclass)
             AND c.contype IN ('u', 'f')
           ORDER BY c.contype = 'f' DESC, c.conname"""
    )
    for c in constraints:  # foreign keys first
        drops.append(f'ALTER TABLE {c["tbl"]} DROP CONSTRAINT "{c["conname"]}"')
        ddl = f'ALTER TABLE {c["tbl"]} ADD CONSTRAINT "{c["conname"]}" {c["def"]}'
        (foreign if c["contype"] == "f" else builds).append(ddl)
    indexes = await conn.fetch(
        """SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def
           FROM pg_index i
           WHERE i.indrelid IN ('sessions'::regclass, 'operations'::regclass)
             AND NOT i.indisprimary
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
           ORDER BY 1"""
    )
    for i in indexes:
        drops.append(f'DROP INDEX "{i["name"]}"')
        builds.append(i["def"])
    return drops, builds, foreign


async def load(
    conn: asyncpg.Connection, size: int, ops_range: tuple[int, int], seed: int
) -> LoadReport:
    report = LoadReport()
    rng = random.Random(f"sessiongraph-scale-{seed}-{size}")
    pools = Pools.make(rng)

    async def timed(what: str, work: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        result = await work()
        report.timings[what] = time.perf_counter() - started
        return result

    drops, builds, foreign = await _secondary_ddl(conn)
    for statement in drops:
        await conn.execute(statement)
    await conn.copy_records_to_table(
        "workflows", records=[*WORKFLOWS, BULK_WORKFLOW], columns=["id", "name"]
    )
    plans: list[SessionPlan] = []
    # The rollups are summed once after the load (as migrations 0003, 0004 do), not per row.
    await conn.execute("ALTER TABLE sessions DISABLE TRIGGER USER")
    await timed(
        "copy sessions",
        lambda: conn.copy_records_to_table(
            "sessions", records=session_rows(size, ops_range, rng, plans), columns=SESSION_COLUMNS
        ),
    )
    await timed(
        "copy operations",
        lambda: conn.copy_records_to_table(
            "operations", records=operation_rows(plans, rng, pools), columns=OPERATION_COLUMNS
        ),
    )
    report.sessions = len(plans)
    plans.clear()
    await timed("count operations", lambda: conn.execute(COUNT_OPERATIONS))

    async def sum_rollups() -> None:
        for migration in ROLLUPS_MIGRATIONS:
            for statement in migration.backfill_statements(sqlite=False):
                await conn.execute(statement)
        # Rows in key order, as the triggers leave them in time order: a grouped INSERT
        # writes them in hash order, one page per row of a window.
        for table in ("session_rollups", "session_model_rollups"):
            await conn.execute(f"CLUSTER {table} USING {table}_pkey")

    await timed("sum rollups", sum_rollups)
    await conn.execute("ALTER TABLE sessions ENABLE TRIGGER USER")
    if TIME_ORDERED:
        # The counters' UPDATE wrote every session anew, in the join's order: back
        # to started_at order (only the primary key is rebuilt, the rest comes next).
        await timed(
            "cluster sessions",
            lambda: conn.execute(
                "CREATE INDEX bench_started ON sessions (started_at);"
                " CLUSTER sessions USING bench_started; DROP INDEX bench_started"
            ),
        )

    async def build() -> None:
        for ddl in builds:
            started = time.perf_counter()
            await conn.execute(ddl)
            say(f"    {time.perf_counter() - started:6.1f} s  {ddl[:110]}")

    async def add_foreign() -> None:
        for ddl in foreign:
            started = time.perf_counter()
            await conn.execute(ddl)
            say(f"    {time.perf_counter() - started:6.1f} s  {ddl[:110]}")

    await timed("indexes + unique", build)
    await timed("foreign key", add_foreign)
    await conn.execute(
        "SELECT setval(pg_get_serial_sequence('operations', 'id'),"
        " (SELECT coalesce(max(id), 1) FROM operations))"
    )
    await timed(
        "vacuum analyze",
        lambda: conn.execute(
            "VACUUM (ANALYZE) workflows, sessions, operations, session_tools,"
            " session_rollups, session_model_rollups"
        ),
    )
    report.operations = await conn.fetchval("SELECT count(*) FROM operations")
    for table in ("sessions", "operations"):
        report.sizes[table] = await conn.fetchval(
            "SELECT pg_size_pretty(pg_table_size($1::regclass)) || ' + ' ||"
            " pg_size_pretty(pg_indexes_size($1::regclass)) || ' idx'",
            table,
        )
    return report


# --- measuring ----------------------------------------------------------------


class QueryFailed(RuntimeError):
    pass


class StatementRecorder:
    """Keeps (statement, parameters) of what the app sends while ``active`` is a list."""

    def __init__(self) -> None:
        self.active: list[tuple[str, tuple[Any, ...]]] | None = None
        self._planning = False

    def __call__(
        self,
        _conn: Any,
        _cursor: Any,
        statement: str,
        parameters: Any,
        _context: Any,
        _executemany: bool,
    ) -> None:
        if statement.startswith("SET plan_cache_mode"):
            self._planning = True
        elif statement.startswith("RESET plan_cache_mode"):
            self._planning = False
        elif self.active is not None:
            self.active.append((statement, tuple(parameters or ())))
            if self._planning:
                PLANNED.add(statement)


#: Statements the app reads planned for their values (``queries._planned``): timed so
#: here too, and never on a generic plan.
PLANNED: set[str] = set()


async def graphql(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": variables or {}})
    body = response.json() if response.status_code == 200 else {}
    if response.status_code != 200 or body.get("errors") or body.get("data") is None:
        detail = body.get("errors") or response.text[:1000]
        raise QueryFailed(f"{' '.join(query.split())[:100]} -> {detail}")
    data: dict[str, Any] = body["data"]
    return data


@dataclass
class Case:
    name: str
    query: str
    variables: dict[str, Any] = field(default_factory=dict)
    repeats: int | None = None  # None: --repeats
    #: A figure to show next to the timings, computed from one response.
    note: Callable[[dict[str, Any]], str] | None = None
    grows_by_design: bool = False


@dataclass
class Measurement:
    p50: float
    p95: float
    note: str
    statements: list[tuple[str, tuple[Any, ...]]]
    repeats: int
    #: The same statements run directly on asyncpg (prepared, like the app's): p50, p95.
    sql_p50: float = math.nan
    sql_p95: float = math.nan
    #: Shared buffers the statements touched (EXPLAIN ANALYZE, summed): the work done.
    buffers: float = math.nan


#: A query slower than this (one run) is repeated only SLOW_REPEATS times.
SLOW_SECONDS = 0.3
SLOW_REPEATS = 10


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


async def measure(
    client: httpx.AsyncClient, recorder: StatementRecorder, case: Case, repeats: int
) -> Measurement:
    gc.collect()
    recorder.active = []
    data = await graphql(client, case.query, case.variables)  # warm-up, recorded
    statements, recorder.active = recorder.active, None
    started = time.perf_counter()
    await graphql(client, case.query, case.variables)
    repeats = case.repeats or repeats
    if time.perf_counter() - started > SLOW_SECONDS:  # keep the whole run short
        repeats = min(repeats, SLOW_REPEATS)
    times: list[float] = []
    for _ in range(repeats):
        started = time.perf_counter()
        await graphql(client, case.query, case.variables)
        times.append((time.perf_counter() - started) * 1000)
    return Measurement(
        p50=statistics.median(times),
        p95=percentile(times, 0.95),
        note=case.note(data) if case.note else "",
        statements=statements,
        repeats=repeats,
    )


SESSION_FIELDS = (
    "id status workflowName totalCostDisplay totalTokensDisplay durationDisplay startedAt"
)
ORDER_FIELDS = [
    "STARTED_AT", "COMPLETED_AT", "TOTAL_COST_USD", "TOTAL_TOKENS", "DURATION_SECONDS",
    "OPERATION_COUNT", "TOOL_CALL_COUNT", "FAILED_OPERATION_COUNT", "UPDATED_AT",
]  # fmt: skip
LIGHT_OPERATION = "operationId operationType timestamp toolName success durationSeconds"

DASHBOARD = """query($after: DateTime!, $before: DateTime!) {
  sessions(first: 50, startedAfter: $after, startedBefore: $before,
           statuses: [COMPLETED, FAILED]) { COUNT nodes { SESSION } }
}""".replace("SESSION", SESSION_FIELDS)
PAGE = """query($after: String, $order: SessionOrder) {
  sessions(first: 50, after: $after, orderBy: $order) {
    nodes { SESSION completedAt } pageInfo { endCursor hasNextPage }
  }
}""".replace("SESSION", SESSION_FIELDS)
FILTERED = """query($workflow: String, $statuses: [SessionStatus!], $order: SessionOrder) {
  sessions(first: 50, workflowId: $workflow, statuses: $statuses, orderBy: $order) {
    nodes { SESSION completedAt } pageInfo { endCursor hasNextPage }
  }
}""".replace("SESSION", SESSION_FIELDS)
WALK = """query($after: String) {
  sessions(first: 50, after: $after) { pageInfo { endCursor hasNextPage } }
}"""
DETAIL = """query($id: String!) {
  session(id: $id) { id status operations(first: 500) { nodes { OPERATION } } }
}""".replace("OPERATION", LIGHT_OPERATION)
BFF = """query($workflow: String) {
  sessions(first: 200, workflowId: $workflow) {
    nodes { id workflowName operationCount operations(first: 50) { nodes { OPERATION } } }
  }
}""".replace("OPERATION", LIGHT_OPERATION)
COUNT_ALL = "{ sessions(first: 50) { totalCount } }"


def _count_nodes(data: dict[str, Any]) -> str:
    return f"{len(data['sessions']['nodes'])} rows"


def _total(data: dict[str, Any]) -> str:
    return f"count={data['sessions']['totalCount']:,}"


def _bff_note(data: dict[str, Any]) -> str:
    nodes = data["sessions"]["nodes"]
    return f"{len(nodes)} sess, {sum(len(n['operations']['nodes']) for n in nodes):,} ops"


def _detail_note(data: dict[str, Any]) -> str:
    return f"{len(data['session']['operations']['nodes'])} ops"


async def time_sql(conn: asyncpg.Connection, m: Measurement) -> None:
    """Runs ``m``'s statements straight on asyncpg, one after another, as often as the app ran.

    Prepared statements, as the app's driver uses them, so after five runs the
    server may switch to a generic plan exactly as it would for the app.
    """
    prepared = [(await conn.prepare(sql), params, sql in PLANNED) for sql, params in m.statements]
    times: list[float] = []
    for k in range(m.repeats + 1):
        started = time.perf_counter()
        for statement, params, planned in prepared:
            if planned:
                await conn.execute("SET plan_cache_mode = force_custom_plan")
            await statement.fetch(*params)
            if planned:
                await conn.execute("RESET plan_cache_mode")
        if k:  # the first run is a warm-up
            times.append((time.perf_counter() - started) * 1000)
    m.sql_p50, m.sql_p95 = statistics.median(times), percentile(times, 0.95)
    m.buffers = 0
    for sql, params in m.statements:
        m.buffers += top_buffers(await explain(conn, sql, params, generic=False))


BUFFERS = re.compile(r"Buffers: shared(?: hit=(\d+))?(?: read=(\d+))?")


def top_buffers(plan: Sequence[str]) -> int:
    """Buffers of the plan's top node, which include its children's."""
    for line in plan:
        if line.startswith("Planning"):
            break
        m = BUFFERS.search(line)
        if m:
            return int(m[1] or 0) + int(m[2] or 0)
    return 0


async def deep_cursor(
    conn: asyncpg.Connection, codec: CursorCodec, column: str, direction: str, *, nulls: bool
) -> str:
    """A cursor half-way through ``column``'s order (or through its NULL tail)."""
    scope = f"sessions:{column.upper()}:{direction}"
    if nulls:
        n = await conn.fetchval(f"SELECT count(*) FROM sessions WHERE {column} IS NULL")
        row = await conn.fetchrow(
            f"SELECT NULL AS value, id FROM sessions WHERE {column} IS NULL"
            f" ORDER BY id {direction} OFFSET $1 LIMIT 1",
            n // 2,
        )
    else:
        n = await conn.fetchval(f"SELECT count({column}) FROM sessions")
        row = await conn.fetchrow(
            f"SELECT {column} AS value, id FROM sessions WHERE {column} IS NOT NULL"
            f" ORDER BY {column} {direction}, id {direction} OFFSET $1 LIMIT 1",
            n // 2,
        )
    assert row is not None
    return codec.encode(scope, Keyset(row["value"], row["id"]))


async def build_cases(
    client: httpx.AsyncClient, conn: asyncpg.Connection, size: int, bff_repeats: int
) -> list[Case]:
    window = {"after": WINDOW_START.isoformat(), "before": ANCHOR.isoformat()}
    cases = [
        Case(
            "dashboard +totalCount",
            DASHBOARD.replace("COUNT", "totalCount"),
            window,
            note=_total,
            grows_by_design=True,
        ),
        Case("dashboard", DASHBOARD.replace("COUNT", ""), window, note=_count_nodes),
        Case("totalCount, no filter", COUNT_ALL, note=_total, grows_by_design=True),
        # The other REST filters, without a time window.
        Case("workflowId (8% of rows)", FILTERED, {"workflow": "wf-docs"}, note=_count_nodes),
        Case("statuses [FAILED]", FILTERED, {"statuses": ["FAILED"]}, note=_count_nodes),
        Case(
            "statuses [FAILED, CANCELLED]",
            FILTERED,
            {"statuses": ["FAILED", "CANCELLED"]},
            note=_count_nodes,
        ),
        Case(
            "statuses [FAILED], COMPLETED_AT DESC",
            FILTERED,
            {"statuses": ["FAILED"], "order": {"field": "COMPLETED_AT", "direction": "DESC"}},
            note=_count_nodes,
        ),
    ]
    # The default order, reached by walking pages like a client would.
    pages = min(100, size // 50 // 2)
    cursor = None
    for _ in range(pages):
        cursor = (await graphql(client, WALK, {"after": cursor}))["sessions"]["pageInfo"][
            "endCursor"
        ]
    cases.append(
        Case(
            "deep page (walked ~100 pages)",
            PAGE,
            {"after": cursor},
            note=lambda data: f"page {pages + 1}, {_count_nodes(data)}",
        )
    )
    for column in ORDER_FIELDS:
        for direction in ("DESC", "ASC"):
            order = {"field": column, "direction": direction}
            cases.append(Case(f"order {column} {direction}", PAGE, {"order": order}))
    codec = CursorCodec(CURSOR_SECRET)
    for column in ORDER_FIELDS:
        for direction in ("DESC", "ASC"):
            deep = await deep_cursor(conn, codec, column.lower(), direction, nulls=False)
            order = {"field": column, "direction": direction}
            cases.append(
                Case(
                    f"deep {column} {direction}",
                    PAGE,
                    {"order": order, "after": deep},
                    note=_count_nodes,
                )
            )
    deep = await deep_cursor(conn, codec, "completed_at", "DESC", nulls=True)
    cases.append(
        Case(
            "deep COMPLETED_AT DESC, in NULLs",
            PAGE,
            {"order": {"field": "COMPLETED_AT", "direction": "DESC"}, "after": deep},
            note=_count_nodes,
        )
    )
    # Detail: a big session whose first 8 characters are unique.
    big = await conn.fetch(
        "SELECT s.id FROM sessions s WHERE s.workflow_id = $1"
        " AND (SELECT count(*) FROM operations o WHERE o.session_id = s.id) = $2 ORDER BY s.id",
        BULK_WORKFLOW[0],
        BIG_OPS,
    )
    for row in big:
        prefix = row["id"][:8]
        try:
            data = await graphql(client, DETAIL, {"id": prefix})
        except QueryFailed:  # ambiguous prefix: try the next one
            continue
        if data["session"] and data["session"]["id"] == row["id"]:
            cases.append(
                Case("detail by prefix, 500 ops", DETAIL, {"id": prefix}, note=_detail_note)
            )
            break
    else:
        raise QueryFailed("no big session with a unique 8-character prefix")
    cases.append(Case("BFF 200 newest x 50 ops", BFF, {}, repeats=bff_repeats, note=_bff_note))
    cases.append(
        Case(
            "BFF 200 bulk x 50 ops",
            BFF,
            {"workflow": BULK_WORKFLOW[0]},
            repeats=bff_repeats,
            note=_bff_note,
        )
    )
    return cases


# --- the stats queries (issue 13's targets) -----------------------------------------

STATS = "query($filter: SessionFilter) { sessionStats(filter: $filter) { FIELDS } }"
#: Each panel a dashboard asks for, as one sessionStats field.
STATS_FIELDS = {
    "count": "count",
    "byStatus": "byStatus { status count }",
    "totals": "totals { totalTokens totalCostUsd totalCostDisplay }",
    "duration p50/p95": "duration { count p50Seconds p95Seconds }",
    "duration p50/p95/p99": "duration { count p50Seconds p95Seconds p99Seconds }",
    "costByModel": "costByModel { model costUsd }",
    "timeSeries(HOUR)": "timeSeries(bucket: HOUR) { start count totals { totalCostUsd } }",
    "timeSeries(DAY)": "timeSeries(bucket: DAY) { start count totals { totalCostUsd } }",
}
#: The fields timed per window (the targets' lists); percentiles over 30 days apart.
WINDOW_FIELDS = {
    "24h": ["count", "byStatus", "totals", "duration p50/p95", "timeSeries(HOUR)"],
    "30d": ["count", "byStatus", "totals", "costByModel", "timeSeries(DAY)"],
    "all": ["count", "byStatus", "totals", "costByModel", "timeSeries(DAY)"],
}
WINDOW_SECONDS = {"24h": 86400, "30d": 30 * 86400, "all": None}
#: The scopes every window is timed in: no filter, one workflow (~30 % of the
#: sessions), one status (~70 %).
STATS_SCOPES: dict[str, dict[str, Any]] = {
    "plain": {},
    "workflow": {"workflowId": {"eq": "wf-triage"}},
    "status": {"status": ["COMPLETED"]},
}
COMPOSED = """query($filter: SessionFilter) {
  sessions(first: 50, filter: $filter) { nodes { SESSION agentModel } }
}""".replace("SESSION", SESSION_FIELDS)
COMPOSED_FILTER = {
    "or": [{"agentModel": {"eq": "claude-opus-4-7"}}, {"agentModel": {"eq": "gpt-5"}}],
    "totalCostUsd": {"gte": "1", "lt": "10"},
    "hasOperation": {"gitBranch": {"eq": "main"}},
}


def _stats_note(data: dict[str, Any]) -> str:
    stats = data["sessionStats"]
    if "count" in stats:
        return f"count={stats['count']:,}"
    if "duration" in stats:
        d = stats["duration"]
        return f"n={d['count']:,} p50={d['p50Seconds']} p95={d['p95Seconds']}"
    if "timeSeries" in stats:
        buckets = stats["timeSeries"]
        return f"{len(buckets)} buckets, {sum(b['count'] for b in buckets):,} sessions"
    if "byStatus" in stats:
        return f"{sum(b['count'] for b in stats['byStatus']):,} sessions"
    if "costByModel" in stats:
        return f"{len(stats['costByModel'])} models"
    return stats["totals"]["totalCostDisplay"]


def stats_cases() -> list[Case]:
    """Issue 13's stats queries: each window's fields in each scope, the exact 30-day
    percentiles, and the composed-filter list."""
    cases: list[Case] = []
    for window, names in WINDOW_FIELDS.items():
        seconds = WINDOW_SECONDS[window]
        for scope, condition in STATS_SCOPES.items():
            condition = dict(condition)
            if seconds is not None:
                condition["startedAt"] = {"lastSeconds": seconds}
            for name in names:
                cases.append(
                    Case(
                        f"stats {window} {scope} {name}",
                        STATS.replace("FIELDS", STATS_FIELDS[name]),
                        {"filter": condition or None},
                        note=_stats_note,
                        # The 30-day and all-time figures must stay flat (rollups);
                        # the last 24 h only under 30 ms, its row count grows.
                        grows_by_design=window == "24h",
                    )
                )
    for scope, condition in STATS_SCOPES.items():
        cases.append(
            Case(
                f"stats 30d {scope} duration p50/p95/p99",
                STATS.replace("FIELDS", STATS_FIELDS["duration p50/p95/p99"]),
                {"filter": {**condition, "startedAt": {"lastSeconds": 30 * 86400}}},
                note=_stats_note,
                grows_by_design=True,
            )
        )
    cases.append(
        Case("composed filter list", COMPOSED, {"filter": COMPOSED_FILTER}, note=_count_nodes)
    )
    return cases


# --- EXPLAIN --------------------------------------------------------------------

SCAN = re.compile(
    r"(Parallel )?(Seq Scan|Index Only Scan|Index Scan|Bitmap Index Scan|Bitmap Heap Scan)"
    r"( Backward)?(?: using (\S+))? on (\S+)"
)
EXEC_TIME = re.compile(r"Execution Time: ([\d.]+) ms")
TOP_COST = re.compile(r"cost=[\d.]+\.\.([\d.]+)")


def scans(plan: Sequence[str]) -> Counter[str]:
    found: Counter[str] = Counter()
    for line in plan:
        m = SCAN.search(line)
        if m:
            kind = f"{m[1] or ''}{m[2]}{m[3] or ''}"
            found[f"{kind} {'using ' + m[4] + ' ' if m[4] else ''}on {m[5]}"] += 1
    return found


#: An index scan whose Filter throws away this many rows is walking the table.
DISCARD_LIMIT = 5000
DISCARDED = re.compile(r"Rows Removed by Filter: (\d+)")


def discarded(plan: Sequence[str]) -> int:
    """The most rows one plan node read and threw away (its Filter)."""
    return max((int(m[1]) for m in map(DISCARDED.search, plan) if m), default=0)


def verdict(plan: Sequence[str]) -> str:
    found = scans(plan)
    seq = [k for k in found if "Seq Scan" in k and not k.endswith(" on workflows")]
    if seq:
        return "SEQ SCAN: " + ", ".join(seq)
    thrown = discarded(plan)
    if thrown >= DISCARD_LIMIT:
        return f"INDEX SCAN + FILTER DISCARDING {thrown:,} ROWS"
    if any("Seq Scan" in k for k in found):
        return "index (+ seq scan of the 6-row workflows table)"
    return "index"


def _literal(value: Any) -> str:
    """``value`` as an untyped SQL literal (the prepared statement's casts type it)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        value = value.isoformat()
    if isinstance(value, list | tuple):
        value = "{" + ",".join(json.dumps(str(v)) for v in value) + "}"
    return "'" + str(value).replace("'", "''") + "'"


async def explain(
    conn: asyncpg.Connection, statement: str, params: tuple[Any, ...], *, generic: bool
) -> list[str]:
    if not generic:
        rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", *params)
        return [r[0] for r in rows]
    # The plan a prepared statement settles on after five runs, if it is cheaper.
    await conn.execute(f"PREPARE bench_generic AS {statement}")
    try:
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        args = ", ".join(_literal(p) for p in params)
        rows = await conn.fetch(
            f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_generic{f'({args})' if args else ''}"
        )
        return [r[0] for r in rows]
    finally:
        await conn.execute("RESET plan_cache_mode")
        await conn.execute("DEALLOCATE bench_generic")


async def _generic(
    conn: asyncpg.Connection,
    statement: str,
    params: tuple[Any, ...],
    plan: list[str],
    found: dict[str, int],
) -> tuple[bool, str]:
    """Whether the plan cache would keep ``statement`` on plans like ``plan``, and the
    line that says what its generic plan is."""
    try:
        generic = await explain(conn, statement, params, generic=True)
    except asyncpg.PostgresError as error:
        return True, f"generic plan: n/a ({type(error).__name__}: {error})"
    gfound = scans(generic)
    same = set(gfound) == set(found)
    custom_cost, generic_cost = _top_cost(plan), _top_cost(generic)
    # The plan cache switches to the generic plan after five runs only
    # when its estimate is no worse than the custom plans' average.
    unused = generic_cost > custom_cost
    if same:
        return True, f"generic plan: same scans, {_exec_ms(generic):.2f} ms"
    return unused, (
        f"generic plan DIFFERS ({_exec_ms(generic):.2f} ms): {_compact(gfound)};"
        f" est. cost {generic_cost:.0f} vs custom {custom_cost:.0f}: "
        + (
            "the plan cache keeps custom plans"
            if unused
            else "the plan cache MAY SWITCH to it after 5 runs"
        )
    )


_COLUMN_LIST = re.compile(r"SELECT ((?:(?!SELECT |FROM ).)+?) FROM ")
_IN_LIST = re.compile(r"\(\$\d+::VARCHAR(?:, \$\d+::VARCHAR)+\)")


def _short_sql(statement: str, limit: int = 900) -> str:
    """The statement on one line, long column lists and IN lists shortened."""
    text = " ".join(statement.split())
    text = _COLUMN_LIST.sub(
        lambda m: m[0] if len(m[1]) < 80 else f"SELECT <{m[1].count(',') + 1} columns> FROM ",
        text,
    )
    text = _IN_LIST.sub(lambda m: f"(<{m[0].count('$')} parameters>)", text)
    return text if len(text) <= limit else text[:limit] + f" ... [{len(text):,} chars]"


def _top_cost(plan: Sequence[str]) -> float:
    m = TOP_COST.search(plan[0]) if plan else None
    return float(m[1]) if m else math.nan


def _exec_ms(plan: Sequence[str]) -> float:
    return next((float(x[1]) for x in map(EXEC_TIME.search, plan) if x), math.nan)


def _compact(found: Counter[str]) -> str:
    return ", ".join(
        f"{kind}{f' x{n}' if n > 1 else ''}".replace(" on sessions", "").replace(
            " on operations", " (operations)"
        )
        for kind, n in found.items()
    )


async def explain_all(
    conn: asyncpg.Connection, results: dict[str, Measurement], plan_lines: int
) -> list[str]:
    """Prints the EXPLAIN evidence; returns one summary line per query."""
    summary: list[str] = []
    seen: dict[str, tuple[str, set[str]]] = {}
    # The server's connections plan every statement for its values.
    custom_only = await conn.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
    say("\n=== EXPLAIN (ANALYZE, BUFFERS) on the largest dataset ===")
    for name, m in results.items():
        say(f"\n## {name}  ({len(m.statements)} statement(s))")
        parts: list[str] = []
        for k, (statement, params) in enumerate(m.statements, 1):
            plan = await explain(conn, statement, params, generic=False)
            found = scans(plan)
            exec_ms = _exec_ms(plan)
            if custom_only or statement in PLANNED:
                same, gtext = True, "never a generic plan (plan_cache_mode)"
            else:
                same, gtext = await _generic(conn, statement, params, plan, found)
            is_workflows = set(found) == {"Seq Scan on workflows"}
            parts.append(
                f"[{k}] workflows lookup {exec_ms:.2f} ms"
                if is_workflows
                else f"[{k}] {verdict(plan)} {exec_ms:.2f} ms: {_compact(found)}"
                + ("" if same else " (MAY SWITCH TO A DIFFERENT GENERIC PLAN)")
            )
            key = _IN_LIST.sub("(...)", statement)
            first = seen.get(key)
            if first is not None and set(found) == first[1]:
                say(
                    f"  [{k}] same SQL and scans as {first[0]}: execution {exec_ms:.2f} ms; {gtext}"
                )
                continue
            say(f"  [{k}] SQL: {_short_sql(statement)}")
            if first is not None:
                say(f"      (same SQL as {first[0]}, other parameters, other plan)")
            seen.setdefault(key, (f"{name} [{k}]", set(found)))
            say(f"      -> {verdict(plan)}; execution {exec_ms:.2f} ms")
            for kind, n in found.items():
                say(f"         {kind} x{n}")
            say(f"      -> {gtext}")
            for text in plan[:plan_lines]:
                say(f"      | {text[:160]}")
            if len(plan) > plan_lines:
                say(f"      | ... {len(plan) - plan_lines} more plan lines")
        summary.append(f"{name}: " + " | ".join(parts))
    return summary


# --- the run ------------------------------------------------------------------


@dataclass
class SizeResult:
    size: int
    load: LoadReport
    results: dict[str, Measurement]
    flat_cases: dict[str, bool]


def selected(cases: list[Case], only: str | None) -> list[Case]:
    """The cases whose name contains ``only`` (case-insensitively), or all of them."""
    if only is None:
        return cases
    return [case for case in cases if only.casefold() in case.name.casefold()]


def _db_url(server_url: str, database: str) -> str:
    return server_url.rsplit("/", 1)[0] + "/" + database


def _raw(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@dataclass
class Prepared:
    """One size, loaded and served: its database, app client and cases, open until
    ``close``."""

    size: int
    database: str
    load: LoadReport
    conn: asyncpg.Connection
    client: httpx.AsyncClient
    recorder: StatementRecorder
    cases: dict[str, Case]
    stack: contextlib.AsyncExitStack


async def prepare_size(server_url: str, size: int, args: argparse.Namespace) -> Prepared:
    database = f"bench_{size}"
    admin = await asyncpg.connect(_raw(server_url))
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {database}")
    finally:
        await admin.close()
    url = _db_url(server_url, database)
    engine = create_engine(Settings(database_url=url))
    await migrate.upgrade(engine)
    await engine.dispose()

    ops_range = (2, 8) if size >= 1_000_000 else (10, 30)
    set_anchor(datetime.now(UTC))
    say(f"\n=== {size:,} sessions (~{sum(ops_range) // 2} operations each) ===")
    stack = contextlib.AsyncExitStack()
    # The statements timed alone run with the server's own session settings (but no
    # statement timeout: this connection loads the data too).
    conn = await asyncpg.connect(
        _raw(url), server_settings=server_settings(Settings(statement_timeout_ms=0))
    )
    stack.push_async_callback(conn.close)
    try:
        load_report = await load(conn, size, ops_range, args.seed)
        say(
            f"  loaded {load_report.sessions:,} sessions and {load_report.operations:,}"
            f" operations in {load_report.total:.1f} s: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in load_report.timings.items())
        )
        say("  on disk: " + "; ".join(f"{k} {v}" for k, v in load_report.sizes.items()))

        app = create_app(Settings(database_url=url, cursor_secret=CURSOR_SECRET, graphiql=False))
        recorder = StatementRecorder()
        sa.event.listen(app.state.engine.sync_engine, "before_cursor_execute", recorder)
        await stack.enter_async_context(app.router.lifespan_context(app))
        client = await stack.enter_async_context(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=120
            )
        )
        cases = []
        if args.suite in ("standard", "all"):
            cases += await build_cases(client, conn, size, args.bff_repeats)
        if args.suite in ("stats", "all"):
            cases += stats_cases()
    except BaseException:
        await stack.aclose()
        raise
    chosen = {case.name: case for case in selected(cases, args.only)}
    return Prepared(size, database, load_report, conn, client, recorder, chosen, stack)


async def measure_sizes(
    prepared: list[Prepared], name: str, repeats: int
) -> dict[int, Measurement]:
    """One case at every size that has it, the sizes taking turns request by request,
    so a slow moment of the machine falls on all alike: what the ratios need."""
    gc.collect()
    present = [p for p in prepared if name in p.cases]
    data: dict[int, dict[str, Any]] = {}
    statements: dict[int, list[tuple[str, tuple[Any, ...]]]] = {}
    slow = False
    for p in present:
        case = p.cases[name]
        p.recorder.active = []
        data[p.size] = await graphql(p.client, case.query, case.variables)  # warm-up, recorded
        statements[p.size], p.recorder.active = p.recorder.active, None
        started = time.perf_counter()
        await graphql(p.client, case.query, case.variables)
        slow = slow or time.perf_counter() - started > SLOW_SECONDS
    first = present[0].cases[name]
    repeats = first.repeats or repeats
    if slow:  # keep the whole run short
        repeats = min(repeats, SLOW_REPEATS)
    times: dict[int, list[float]] = {p.size: [] for p in present}
    for _ in range(repeats):
        for p in present:
            case = p.cases[name]
            started = time.perf_counter()
            await graphql(p.client, case.query, case.variables)
            times[p.size].append((time.perf_counter() - started) * 1000)
    return {
        p.size: Measurement(
            p50=statistics.median(times[p.size]),
            p95=percentile(times[p.size], 0.95),
            note=p.cases[name].note(data[p.size]) if p.cases[name].note else "",
            statements=statements[p.size],
            repeats=repeats,
        )
        for p in present
    }


async def close_size(server_url: str, p: Prepared, keep: bool) -> None:
    await p.stack.aclose()
    if not keep:
        admin = await asyncpg.connect(_raw(server_url))
        try:
            await admin.execute(f"DROP DATABASE {p.database} WITH (FORCE)")
        finally:
            await admin.close()


# --- SQLite ---------------------------------------------------------------------


def _sqlite_value(value: Any) -> Any:
    """A generated value as the app's column types store it on SQLite."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    if isinstance(value, Decimal):
        return float(value)  # Money is a double on SQLite
    if isinstance(value, bool):
        return int(value)
    return value


async def load_sqlite(
    db: sqlite3.Connection, size: int, ops_range: tuple[int, int], seed: int
) -> LoadReport:
    """The PostgreSQL dataset, inserted in batches with the secondary indexes dropped."""
    report = LoadReport()
    rng = random.Random(f"sessiongraph-scale-{seed}-{size}")
    pools = Pools.make(rng)
    db.execute("PRAGMA synchronous = OFF")
    indexes = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        " AND tbl_name IN ('sessions', 'operations') ORDER BY name"
    ).fetchall()
    for name, _ in indexes:
        db.execute(f'DROP INDEX "{name}"')
    db.executemany("INSERT INTO workflows (id, name) VALUES (?, ?)", [*WORKFLOWS, BULK_WORKFLOW])

    async def insert(table: str, columns: list[str], rows: AsyncIterator[Row]) -> None:
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        batch: list[Row] = []
        async for row in rows:
            batch.append(tuple(map(_sqlite_value, row)))
            if len(batch) >= 20_000:
                db.executemany(sql, batch)
                batch.clear()
        db.executemany(sql, batch)
        db.commit()

    async def timed(what: str, work: Callable[[], Any]) -> None:
        started = time.perf_counter()
        await work()
        report.timings[what] = time.perf_counter() - started

    async def sync(work: Callable[[], Any]) -> None:
        work()
        db.commit()

    plans: list[SessionPlan] = []
    await timed(
        "insert sessions",
        lambda: insert("sessions", SESSION_COLUMNS, session_rows(size, ops_range, rng, plans)),
    )
    await timed(
        "insert operations",
        lambda: insert("operations", OPERATION_COLUMNS, operation_rows(plans, rng, pools)),
    )
    report.sessions = len(plans)
    plans.clear()
    await timed("count operations", lambda: sync(lambda: db.executescript(COUNT_OPERATIONS)))

    def build() -> None:
        for _, ddl in indexes:
            db.execute(ddl)

    await timed("indexes", lambda: sync(build))
    await timed("analyze", lambda: sync(lambda: db.execute("ANALYZE")))
    report.operations = db.execute("SELECT count(*) FROM operations").fetchone()[0]
    return report


def _sqlite_plan(db: sqlite3.Connection, statement: str, params: tuple[Any, ...]) -> list[str]:
    rows = db.execute(f"EXPLAIN QUERY PLAN {statement}", params).fetchall()
    depth: dict[int, int] = {0: 0}
    lines = []
    for node, parent, _, detail in rows:
        depth[node] = depth.get(parent, 0) + 1
        lines.append("  " * depth[node] + detail)
    return lines


async def run_sqlite_size(
    directory: Path, size: int, args: argparse.Namespace, *, largest: bool
) -> SizeResult:
    path = directory / f"bench_{size}.db"
    path.unlink(missing_ok=True)
    url = f"sqlite+aiosqlite:///{path}"
    engine = create_engine(Settings(database_url=url))
    await migrate.upgrade(engine)
    await engine.dispose()
    ops_range = (2, 8) if size >= 1_000_000 else (10, 30)
    set_anchor(datetime.now(UTC))
    say(f"\n=== SQLite, {size:,} sessions (~{sum(ops_range) // 2} operations each) ===")
    db = sqlite3.connect(path)
    try:
        report = await load_sqlite(db, size, ops_range, args.seed)
        say(
            f"  loaded {report.sessions:,} sessions and {report.operations:,} operations in"
            f" {report.total:.1f} s: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in report.timings.items())
            + f"; file {path.stat().st_size / 2**20:,.0f} MiB"
        )
        app = create_app(Settings(database_url=url, cursor_secret=CURSOR_SECRET, graphiql=False))
        recorder = StatementRecorder()
        sa.event.listen(app.state.engine.sync_engine, "before_cursor_execute", recorder)
        results: dict[str, Measurement] = {}
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=120
            ) as client,
        ):
            for case in selected(stats_cases(), args.only):
                m = await measure(client, recorder, case, args.repeats)
                results[case.name] = m
                say(
                    f"  {case.name:<40} p50 {m.p50:8.2f} ms  p95 {m.p95:8.2f} ms"
                    f"  ({len(m.statements)} stmt)  {m.note}"
                )
        if largest:
            say("\n=== EXPLAIN QUERY PLAN on the largest SQLite dataset ===")
            shown: set[str] = set()
            for name, m in results.items():
                say(f"\n## {name}")
                for k, (statement, params) in enumerate(m.statements, 1):
                    if statement in shown:
                        say(f"  [{k}] same SQL as shown before")
                        continue
                    shown.add(statement)
                    say(f"  [{k}] SQL: {_short_sql(statement)}")
                    for line in _sqlite_plan(db, statement, params)[: args.plan_lines]:
                        say(f"      | {line}")
    finally:
        db.close()
    return SizeResult(
        size,
        report,
        results,
        {n: not c.grows_by_design for n, c in ((c.name, c) for c in stats_cases())},
    )


async def run_sqlite(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    runs: list[SizeResult] = []
    with tempfile.TemporaryDirectory(prefix="sessiongraph-bench-") as directory:
        for i, size in enumerate(args.sizes):
            runs.append(
                await run_sqlite_size(Path(directory), size, args, largest=i == len(args.sizes) - 1)
            )
    print_table(
        runs, "SQLite, through the app: GraphQL over ASGI, end to end", lambda m: (m.p50, m.p95)
    )
    print_notes(runs)
    say("\nData generation + load:")
    for r in runs:
        say(
            f"  {r.size:>10,} sessions {r.load.operations:>11,} operations:"
            f" {r.load.total:6.1f} s  ("
            + ", ".join(f"{k} {v:.1f} s" for k, v in r.load.timings.items())
            + ")"
        )
    say(f"\nTotal run time: {time.perf_counter() - started:.0f} s")


def print_table(
    runs: list[SizeResult],
    title: str,
    pick: Callable[[Measurement], tuple[float, float | None]],
    unit: str = "p50 / p95 ms",
) -> None:
    first, last = runs[0], runs[-1]
    names = list(first.results)
    width = max(len(n) for n in names) + 2

    def cell(m: Measurement | None) -> str:
        if m is None:
            return "n/a"
        a, b = pick(m)
        return f"{a:,.0f}" if b is None else f"{a:.2f} / {b:.2f}"

    header = f"{f'query ({unit})':<{width}}" + "".join(f"{f'{r.size:,}':>21}" for r in runs)
    header += f"   {'ratio':>7}  ({last.size:,} vs {first.size:,})"
    say(f"\n=== {title} ===")
    say(header)
    say("-" * len(header))
    for name in names:
        line = f"{name:<{width}}" + "".join(f"{cell(r.results.get(name)):>21}" for r in runs)
        if name in last.results and name in first.results:
            ratio = pick(last.results[name])[0] / max(pick(first.results[name])[0], 1e-9)
            mark = ""
            if ratio > 1.5:
                mark = "  > 1.5 !!" if first.flat_cases[name] else "  > 1.5 (grows by design)"
            line += f"   {ratio:7.2f}{mark}"
        say(line)


def print_notes(runs: list[SizeResult]) -> None:
    names = list(runs[0].results)
    width = max(len(n) for n in names) + 2
    say("\nPer-size figures (from one response), sizes in order:")
    for name in names:
        notes = [r.results[name].note for r in runs if name in r.results]
        if any(notes):
            say(f"  {name:<{width}}" + " | ".join(notes))


async def run(server_url: str, args: argparse.Namespace) -> None:
    started = time.perf_counter()
    prepared: list[Prepared] = []
    results: dict[int, dict[str, Measurement]] = {size: {} for size in args.sizes}
    flat: dict[str, bool] = {}
    summary: list[str] = []
    try:
        for size in args.sizes:
            prepared.append(await prepare_size(server_url, size, args))
        names = list(dict.fromkeys(name for p in prepared for name in p.cases))
        say(f"\n=== timed: the sizes ({', '.join(f'{s:,}' for s in args.sizes)}) take turns ===")
        for name in names:
            measured = await measure_sizes(prepared, name, args.repeats)
            for p in prepared:
                if p.size not in measured:
                    continue
                m = measured[p.size]
                await time_sql(p.conn, m)
                results[p.size][name] = m
                flat[name] = not p.cases[name].grows_by_design
                say(
                    f"  {p.size:>9,}  {name:<40} p50 {m.p50:8.2f} ms  p95 {m.p95:8.2f} ms"
                    f"  | SQL only p50 {m.sql_p50:7.2f} ms ({len(m.statements)} stmt,"
                    f" {m.buffers:,.0f} buffers)  {m.note}"
                )
        if prepared:
            summary = await explain_all(
                prepared[-1].conn, results[prepared[-1].size], args.plan_lines
            )
    finally:
        for p in prepared:
            await close_size(server_url, p, args.keep)
    runs = [SizeResult(p.size, p.load, results[p.size], flat) for p in prepared]
    print_table(runs, "Through the app: GraphQL over ASGI, end to end", lambda m: (m.p50, m.p95))
    print_table(
        runs,
        "SQL only: the same statements on asyncpg, summed per query",
        lambda m: (m.sql_p50, m.sql_p95),
    )
    print_table(
        runs,
        "Work: shared buffers the statements touch (EXPLAIN ANALYZE), summed per query",
        lambda m: (m.buffers, None),
        unit="8 kB buffers",
    )
    print_notes(runs)
    say("\nData generation + load (COPY, index builds, VACUUM ANALYZE):")
    for r in runs:
        say(
            f"  {r.size:>10,} sessions {r.load.operations:>11,} operations:"
            f" {r.load.total:6.1f} s  ("
            + ", ".join(f"{k} {v:.1f} s" for k, v in r.load.timings.items())
            + ")"
        )
    say(f"\nEXPLAIN summary ({args.sizes[-1]:,} sessions):")
    for line in summary:
        say(f"  {line}")
    say(f"\nTotal run time: {time.perf_counter() - started:.0f} s")
    if args.keep and sys.stdin.isatty():
        say(
            f"\nDatabases kept at {_raw(server_url)} (bench_<size>)."
            " Press Enter to stop the server."
        )
        await asyncio.to_thread(sys.stdin.readline)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default=None,
        help="comma-separated session counts (default 10000,100000,1000000; SQLite 100000)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: --sizes 2000,20000")
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per query")
    parser.add_argument("--bff-repeats", type=int, default=10, help="timed runs of the BFF queries")
    parser.add_argument("--plan-lines", type=int, default=40, help="plan lines shown per statement")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep each size's database")
    parser.add_argument(
        "--suite",
        choices=("all", "standard", "stats"),
        default="all",
        help="the list/detail queries, issue 13's stats queries, or both (default)",
    )
    parser.add_argument(
        "--only",
        metavar="TEXT",
        help="time only the cases whose name contains TEXT, e.g. --only p99 (the percentiles)",
    )
    parser.add_argument(
        "--sqlite",
        action="store_true",
        help="the stats queries on a SQLite file instead (default --sizes 100000)",
    )
    parser.add_argument(
        "--heap-order",
        choices=("time", "random"),
        default="time",
        help="store sessions in started_at order (default, as they are written) or at random",
    )
    args = parser.parse_args()
    global TIME_ORDERED
    TIME_ORDERED = args.heap_order == "time"
    if args.sizes is None:
        args.sizes = "100000" if args.sqlite else "10000,100000,1000000"
    args.sizes = [2000, 20000] if args.quick else [int(s) for s in args.sizes.split(",")]
    if any(s <= BULK_SESSIONS for s in args.sizes):
        parser.error(f"every size must be above {BULK_SESSIONS}")
    if args.sqlite:
        asyncio.run(run_sqlite(args))
        return
    if os.environ.get("SESSIONGRAPH_TEST_POSTGRES_URL"):
        say("Using SESSIONGRAPH_TEST_POSTGRES_URL; the benchmark server settings are not applied.")
    # A plain `kill` still stops the throwaway server and deletes its files.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with throwaway_postgres(settings=SERVER_SETTINGS) as url:
        asyncio.run(run(url, args))


if __name__ == "__main__":
    main()
