"""Deterministic, realistic demo data: workflows, sessions and their operations.

Everything comes from one ``random.Random(seed)`` and a fixed anchor instant, so
the same seed always writes the same rows. Rows are plain dicts inserted with
Core bulk inserts inside one transaction.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sessiongraph.db import counters, tables, writer

__all__ = ["ANCHOR", "README_SESSION_ID", "README_WORKFLOW_ID", "SeedReport", "seed_demo_data"]

#: Every generated timestamp lies at or before this instant.
ANCHOR: Final = datetime(2026, 4, 18, 8, 0, 0, tzinfo=UTC)
_WINDOW_US: Final = 30 * 24 * 3600 * 1_000_000
_CHUNK_ROWS: Final = 2_000
_MAX_OPERATIONS: Final = 400
_MEAN_OPERATIONS: Final = 85.0
_MICRO = Decimal("0.000001")
_MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class SeedReport:
    """How many rows of each kind were inserted."""

    workflows: int
    sessions: int
    operations: int


@dataclass(frozen=True, slots=True)
class _Price:
    """US dollars per million tokens."""

    input: Decimal
    output: Decimal
    cache_write: Decimal
    cache_read: Decimal


def _price(inp: str, out: str, write: str, read: str) -> _Price:
    return _Price(Decimal(inp), Decimal(out), Decimal(write), Decimal(read))


_PRICES: Final = {
    "claude-opus-4-7": _price("15", "75", "18.75", "1.50"),
    "claude-sonnet-4-6": _price("3", "15", "3.75", "0.30"),
    "claude-haiku-4-5": _price("1", "5", "1.25", "0.10"),
    "gpt-4o": _price("2.50", "10", "0", "1.25"),
    "mock-echo": _price("0", "0", "0", "0"),
}
_SUBAGENT_MODEL: Final = "claude-haiku-4-5"

# What the README's examples name, given to sessions of any seed (their random draws are
# made all the same, so the rest of the data does not move): the workflow the dashboard
# examples read, the session whose timeline is shown by its id prefix (the first completed
# session with five tool calls), and a failed and a cancelled session of that workflow on
# the dashboard's day.
README_WORKFLOW_ID: Final = "wf-release"
README_WORKFLOW_NAME: Final = "Release"
README_SESSION_ID: Final = "3f2a9c1e-7b4d-4e8a-9c61-2d5f0a8b3e17"
README_DAY: Final = datetime(2026, 4, 17, 9, 30, tzinfo=UTC)
#: Session index -> its start on README_DAY; index 1 is failed, 2 cancelled (every seed
#: draws its first statuses in the order of _STATUS_WEIGHTS).
_README_DAY_STARTS: Final = {1: timedelta(0), 2: timedelta(hours=4, minutes=12)}

_WORKFLOW_NAMES: Final = (
    "Bug triage",
    "Feature implementation",
    "Nightly dependency bump",
    "Security review",
    "Docs refresh",
)
_STATUS_WEIGHTS: Final = {
    "completed": 62,
    "failed": 12,
    "cancelled": 6,
    "running": 10,
    "pending": 10,
}
_PHASE_SLUGS: Final = (
    "detect",
    "research_phase",
    "fix-bug",
    "implement",
    "review",
    "plan",
    "write_tests",
    "release-notes",
)
_REPOS: Final = (
    "acme/payments-api",
    "acme/web-frontend",
    "acme/infra",
    "octo/sessiongraph",
    "octo/docs-site",
    "globex/ml-pipeline",
    "globex/mobile-app",
)
_TRIGGERS: Final = ("schedule", "manual", "webhook", "retry", "ci")
_ERRORS: Final = (
    "Tool execution timed out after 600s",
    "Rate limit exceeded (429) from provider after 5 retries",
    "Agent exceeded the maximum of 50 turns",
    "git push rejected: non-fast-forward",
    "Context window exceeded: 200000 tokens",
    "Sandbox exited with code 137 (out of memory)",
)
_FILES: Final = (
    "src/app/main.py",
    "src/app/models.py",
    "src/app/api/routes.py",
    "src/app/db/queries.py",
    "tests/test_api.py",
    "tests/conftest.py",
    "README.md",
    "pyproject.toml",
    "package.json",
    "src/components/SessionList.tsx",
    "docs/index.md",
    "Makefile",
    ".github/workflows/ci.yml",
)
_COMMANDS: Final = (
    "pytest -q",
    "git status --short",
    "git diff --stat",
    "npm test -- --watch=false",
    "ruff check .",
    "ls -la",
    "make build",
    "grep -rn TODO src",
    "mypy --strict src",
    "cargo test",
)
_URLS: Final = (
    "https://docs.python.org/3/library/asyncio.html",
    "https://docs.sqlalchemy.org/en/20/core/dml.html",
    "https://strawberry.rocks/docs/guides/dataloaders",
    "https://docs.github.com/en/graphql/guides/using-pagination-in-the-graphql-api",
)
_TOOL_WEIGHTS: Final = {"Read": 30, "Bash": 25, "Edit": 15, "Grep": 15, "Write": 5, "WebFetch": 4}
#: (minimum, maximum) tool run time in microseconds.
_TOOL_TIMES: Final = {
    "Read": (5_000, 300_000),
    "Edit": (10_000, 500_000),
    "Write": (10_000, 500_000),
    "Grep": (30_000, 2_000_000),
    "Bash": (150_000, 120_000_000),
    "WebFetch": (500_000, 15_000_000),
}
_AUTHORS: Final = ("Claude <noreply@anthropic.com>", "sessiongraph-bot <bot@example.com>")

_NOUNS: Final = (
    "parser",
    "cache layer",
    "retry policy",
    "session store",
    "migration",
    "API handler",
    "test fixture",
    "config loader",
    "rate limiter",
    "query planner",
    "cursor encoder",
    "webhook client",
    "build script",
    "connection pool",
    "serializer",
    "index",
)
_VERBS: Final = (
    "refactors",
    "validates",
    "caches",
    "retries",
    "logs",
    "normalizes",
    "paginates",
    "serializes",
    "guards",
    "batches",
    "streams",
    "drops",
)
_ADJECTIVES: Final = (
    "flaky",
    "slow",
    "legacy",
    "async",
    "nullable",
    "deprecated",
    "untested",
    "shared",
    "idempotent",
    "oversized",
)
_TEMPLATES: Final = (
    "The {a} {n} {v} every request before it reaches the {m}.",
    "Let me look at {f} to see where the {a} {n} is created.",
    "Running the tests again shows the {n} still {v} twice under load.",
    "{f} defines the {n}; it {v} the {m} without holding a lock.",
    "The failure comes from the {n}: it {v} a {a} value that the {m} rejects.",
    "After this change the {n} {v} results, so the {m} no longer times out.",
    "I will check how the {n} handles {a} input and then update {f}.",
    "Nothing else in {f} touches the {m}, so the {a} path is safe to remove.",
)

_OPERATION_COLUMNS: Final = tuple(c.key for c in tables.operations.c if c.key != "id")
_BLANK_OPERATION: Final[dict[str, Any]] = dict.fromkeys(_OPERATION_COLUMNS)


async def seed_demo_data(
    engine: AsyncEngine,
    *,
    sessions: int = 200,
    seed: int = 7,
    progress: Callable[[int, int], None] | None = None,
) -> SeedReport:
    """Insert ``sessions`` demo sessions (and workflows and operations) into an existing schema.

    The same ``seed`` always produces the same rows. ``progress(done, total)`` is
    called about every 5% of sessions and once more at the end with ``(total, total)``.
    """
    if sessions < 0:
        raise ValueError("sessions must be >= 0")
    gen = _Generator(random.Random(seed))
    workflow_rows = gen.workflows()
    step = max(1, sessions // 20)
    session_buffer: list[dict[str, Any]] = []
    operation_buffer: list[dict[str, Any]] = []
    tool_buffer: list[dict[str, Any]] = []
    operation_count = 0
    timeline_named = False

    async def flush(conn: AsyncConnection) -> None:
        # Sessions first: operations and tool usage reference them.
        for table, buffer in (
            (tables.sessions, session_buffer),
            (tables.operations, operation_buffer),
            (tables.session_tools, tool_buffer),
        ):
            for start in range(0, len(buffer), _CHUNK_ROWS):
                await conn.execute(table.insert(), buffer[start : start + _CHUNK_ROWS])
            buffer.clear()

    async with writer.transaction(engine) as conn:
        await conn.execute(tables.workflows.insert(), workflow_rows)
        for done in range(1, sessions + 1):
            session_row, operation_rows = gen.session(index=done - 1)
            if not timeline_named and _shows_a_timeline(session_row, operation_rows):
                session_row, operation_rows = _renamed(session_row, operation_rows)
                timeline_named = True
            # Counted as recordOperations counts them (updated_at: the database's clock).
            tally = counters.Tally.of(operation_rows)
            session_buffer.append(session_row | tally.counters())
            tool_buffer.extend(tally.tool_rows(session_row["id"]))
            operation_buffer.extend(operation_rows)
            operation_count += len(operation_rows)
            if len(operation_buffer) >= _CHUNK_ROWS or len(session_buffer) >= _CHUNK_ROWS:
                await flush(conn)
            if progress is not None and done % step == 0 and done < sessions:
                progress(done, sessions)
        await flush(conn)
    if progress is not None:
        progress(sessions, sessions)
    return SeedReport(workflows=len(workflow_rows), sessions=sessions, operations=operation_count)


def _shows_a_timeline(session: dict[str, Any], operations: list[dict[str, Any]]) -> bool:
    """Whether a session makes the README's timeline example: completed, with tool calls."""
    tools = sum(op["operation_type"] == "tool_execution_completed" for op in operations)
    return bool(session["status"] == "completed" and tools >= 5)


def _renamed(
    session: dict[str, Any], operations: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The session and its operations under README_SESSION_ID."""
    return session | {"id": README_SESSION_ID}, [
        op | {"session_id": README_SESSION_ID} for op in operations
    ]


class _Generator:
    """Draws every row from one random stream, in a fixed order."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.sentences = [self._sentence() for _ in range(400)]
        self.workflow_ids: list[str] = []
        self.orphan_workflow_id = ""
        self.executions: dict[str, list[str]] = {}
        self.tool_calls = 0
        self.git_operations = 0

    # -- small draws --------------------------------------------------------

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def sha(self) -> str:
        return f"{self.rng.getrandbits(160):040x}"

    def tool_use_id(self) -> str:
        return f"toolu_{self.rng.getrandbits(96):024x}"

    def _sentence(self) -> str:
        rng = self.rng
        nouns = rng.sample(_NOUNS, 2)
        return rng.choice(_TEMPLATES).format(
            a=rng.choice(_ADJECTIVES),
            n=nouns[0],
            m=nouns[1],
            v=rng.choice(_VERBS),
            f=rng.choice(_FILES),
        )

    def text(self, low: int = 1, high: int = 4) -> str:
        return " ".join(self.rng.choices(self.sentences, k=self.rng.randint(low, high)))

    def long_text(self) -> str:
        """Tens of kilobytes: pasted logs, long plans, subagent reports."""
        size = self.rng.randint(10_000, 40_000)
        # Sentences average ~85 characters; draw enough, then cut at the size.
        paragraphs = [
            " ".join(self.rng.choices(self.sentences, k=8)) for _ in range(size // 600 + 1)
        ]
        return "\n\n".join(paragraphs)[:size]

    def content(self, large_probability: float) -> str:
        if self.rng.random() < large_probability:
            return self.long_text()
        return self.text()

    def micros(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    # -- rows -----------------------------------------------------------------

    def workflows(self) -> list[dict[str, Any]]:
        rows = [{"id": self.uuid(), "name": name} for name in _WORKFLOW_NAMES]
        rows[0] = {"id": README_WORKFLOW_ID, "name": README_WORKFLOW_NAME}
        self.workflow_ids = [row["id"] for row in rows]
        # Referenced by some sessions but never stored: their workflow_name is null.
        self.orphan_workflow_id = self.uuid()
        return rows

    def session(self, *, index: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        rng = self.rng
        session_id = self.uuid()
        if index < len(_STATUS_WEIGHTS):
            status = list(_STATUS_WEIGHTS)[index]  # every status appears in any sizeable seed
        else:
            status = rng.choices(list(_STATUS_WEIGHTS), weights=list(_STATUS_WEIGHTS.values()))[0]

        workflow_id = rng.choices(
            [*self.workflow_ids, self.orphan_workflow_id, None],
            weights=[18] * len(self.workflow_ids) + [6, 4],
        )[0]
        execution_id = self._execution_id(workflow_id)
        if index in _README_DAY_STARTS:
            workflow_id, execution_id = README_WORKFLOW_ID, None
        roll = rng.random()
        if roll < 0.78:
            phase_id: str | None = rng.choice(_PHASE_SLUGS)
        elif roll < 0.95:
            phase_id = self.uuid()
        else:
            phase_id = None
        milestone_id = f"milestone-{rng.randint(1, 12)}" if rng.random() < 0.6 else None

        roll = rng.random()
        if roll < 0.78:
            provider = "claude"
            model = rng.choices(
                ["claude-sonnet-4-6", "claude-opus-4-7", "claude-haiku-4-5"], weights=[60, 25, 15]
            )[0]
            subagent = _SUBAGENT_MODEL if model != _SUBAGENT_MODEL and rng.random() < 0.3 else None
        elif roll < 0.9:
            provider, model, subagent = "openai", "gpt-4o", None
        else:
            provider, model, subagent = "mock", "mock-echo", None

        repos = rng.sample(_REPOS, rng.choices([0, 1, 2, 3], weights=[10, 60, 20, 10])[0])
        workspace = f"/workspaces/{repos[0].split('/', 1)[1] if repos else 'scratch'}"
        workspace_path = None if rng.random() < 0.05 else workspace
        metadata: dict[str, Any] = {
            "trigger": rng.choice(_TRIGGERS),
            "priority": rng.randint(1, 3),
        }
        if rng.random() < 0.2:
            metadata["labels"] = rng.sample(["backend", "frontend", "urgent", "infra", "docs"], 2)

        builder = _SessionBuilder(
            self,
            session_id=session_id,
            status=status,
            model=model,
            subagent=subagent,
            phase_id=phase_id,
            repos=repos,
            workspace=workspace,
        )
        builder.build()

        started_at: datetime | None = None
        completed_at: datetime | None = None
        duration: float | None = None
        span = builder.offset
        if status == "running":
            started_at = ANCHOR - timedelta(
                microseconds=span + rng.randint(1_000_000, 1_800_000_000)
            )
        elif status != "pending":
            latest_start = _WINDOW_US - span
            started_at = ANCHOR - timedelta(microseconds=_WINDOW_US - rng.randint(0, latest_start))
            completed_at = started_at + timedelta(microseconds=span)
            duration = (completed_at - started_at).total_seconds()
        if index in _README_DAY_STARTS and started_at is not None:
            started_at = README_DAY + _README_DAY_STARTS[index]
            completed_at = started_at + timedelta(microseconds=span)
        operation_rows = builder.rows(started_at)

        usage = builder.usage
        costs = {
            name: _cost(_PRICES[name], counts) for name, counts in usage.items() if any(counts)
        }
        total_cost = sum(costs.values(), Decimal(0)).quantize(_MICRO)
        input_tokens = sum(counts[0] for counts in usage.values())
        output_tokens = sum(counts[1] for counts in usage.values())
        cache_creation = sum(counts[2] for counts in usage.values())
        cache_read = sum(counts[3] for counts in usage.values())

        session_row = {
            "id": session_id,
            "workflow_id": workflow_id,
            "execution_id": execution_id,
            "phase_id": phase_id,
            "milestone_id": milestone_id,
            "status": status,
            "agent_provider": provider,
            "agent_model": model,
            "repos": repos,
            "workspace_path": workspace_path,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_tokens": cache_creation,
            "cache_read_tokens": cache_read,
            "total_tokens": input_tokens + output_tokens + cache_creation + cache_read,
            "total_cost_usd": total_cost,
            "cost_by_model": {name: str(cost) for name, cost in costs.items()},
            "started_at": started_at,
            "completed_at": completed_at,
            "duration_seconds": duration,
            "error_message": rng.choice(_ERRORS) if status == "failed" else None,
            "metadata": metadata,
        }
        return session_row, operation_rows

    def _execution_id(self, workflow_id: str | None) -> str | None:
        rng = self.rng
        if rng.random() < 0.15:
            return None
        known = self.executions.setdefault(workflow_id or "", [])
        # Phases of one execution share its id.
        if known and rng.random() < 0.5:
            return rng.choice(known)
        execution_id = f"exec-{rng.getrandbits(48):012x}"
        known.append(execution_id)
        return execution_id


def _cost(price: _Price, counts: list[int]) -> Decimal:
    inp, out, write, read = counts
    dollars = (
        inp * price.input + out * price.output + write * price.cache_write + read * price.cache_read
    ) / _MILLION
    return dollars.quantize(_MICRO)


class _SessionBuilder:
    """The operations of one session, as offsets from its start in microseconds."""

    def __init__(
        self,
        gen: _Generator,
        *,
        session_id: str,
        status: str,
        model: str,
        subagent: str | None,
        phase_id: str | None,
        repos: list[str],
        workspace: str,
    ) -> None:
        self.gen = gen
        self.rng = gen.rng
        self.session_id = session_id
        self.status = status
        self.model = model
        self.subagent = subagent
        self.phase_id = phase_id
        self.repos = repos
        self.workspace = workspace
        self.ops: list[dict[str, Any]] = []
        self.offsets: list[int] = []
        self.offset = 0
        #: model -> [input, output, cache_creation, cache_read] token sums.
        self.usage: dict[str, list[int]] = {}
        self.responses = 0
        self.branch = "main"
        self.unpushed: list[str] = []
        self.pushed_sha: str | None = None
        self.budget = 0
        self.reserve = 0

    # -- plumbing -------------------------------------------------------------

    def room(self) -> int:
        return self.budget - self.reserve - len(self.ops)

    def add(self, operation_type: str, gap_us: int, **fields: Any) -> dict[str, Any]:
        # A positive gap keeps timestamps strictly increasing within the session.
        self.offset += gap_us if self.ops else 0
        row = dict(_BLANK_OPERATION)
        row["operation_id"] = self.gen.uuid()
        row["session_id"] = self.session_id
        row["operation_type"] = operation_type
        row["success"] = True
        row.update(fields)
        self.ops.append(row)
        self.offsets.append(self.offset)
        return row

    def rows(self, started_at: datetime | None) -> list[dict[str, Any]]:
        if started_at is None:
            return []
        for row, offset in zip(self.ops, self.offsets, strict=True):
            row["timestamp"] = started_at + timedelta(microseconds=offset)
        return self.ops

    # -- the session ------------------------------------------------------------

    def build(self) -> None:
        rng = self.rng
        if self.status == "pending":
            return
        finished = self.status != "running"
        draw = min(_MAX_OPERATIONS, int(rng.expovariate(1 / _MEAN_OPERATIONS)))
        self.budget = max(2 if finished else 1, draw)
        phase_ops = self.phase_id is not None and self.budget >= 6 and rng.random() < 0.6
        # Room kept for the closing operations (or an in-flight tool call when running).
        self.reserve = (1 + phase_ops) if finished else min(1, self.budget - 1)

        self.add("session_started", 0)
        if phase_ops and self.room() > 0:
            self.add(
                "phase_started", self.gen.micros(1_000, 200_000), message_content=self.phase_id
            )
        if self.repos and self.room() >= 1 and rng.random() < 0.2:
            self.git_branch_changed()
        if self.room() > 0:
            self.user_message()
        while self.room() > 0:
            self.turn()

        if not finished:
            if self.reserve:
                self.reserve = 0
                self.tool_started(self.pick_tool())  # still running
            return
        if phase_ops:
            self.add(
                "phase_completed", self.gen.micros(1_000, 500_000), message_content=self.phase_id
            )
        if self.status == "failed":
            self.add(
                "session_error",
                self.gen.micros(10_000, 2_000_000),
                success=False,
                message_content=rng.choice(_ERRORS),
            )
        else:
            self.add(
                "session_completed",
                self.gen.micros(10_000, 2_000_000),
                success=self.status == "completed",
            )

    def turn(self) -> None:
        rng = self.rng
        if self.room() >= 2 and rng.random() < 0.3:
            self.add(
                "thinking",
                self.gen.micros(300_000, 8_000_000),
                thinking_content=self.gen.content(0.02),
            )
        if self.room() >= 1:
            self.response(self.subagent if self.subagent and rng.random() < 0.15 else self.model)
        tools = rng.choices([0, 1, 2, 3, 4, 6], weights=[15, 35, 22, 14, 9, 5])[0]
        for _ in range(tools):
            room = self.room()
            if room < 1:
                break
            roll = rng.random()
            if roll < 0.01:
                self.tool_blocked()
            elif room < 2:
                break
            elif roll < 0.09 and self.repos and room >= 3:
                self.git_commit()
            elif roll < 0.13 and self.unpushed and room >= 3:
                self.git_push()
            elif roll < 0.17 and room >= 5:
                self.task()
            else:
                self.tool_pair(self.pick_tool())
        roll = rng.random()
        if self.room() >= 1 and roll < 0.08:
            self.user_message()
        elif self.room() >= 1 and roll < 0.10:
            self.add(
                "context_compacted", self.gen.micros(500_000, 5_000_000), message_content="auto"
            )
        elif self.room() >= 1 and roll < 0.12:
            self.add(
                "permission_requested",
                self.gen.micros(50_000, 500_000),
                tool_name="Bash",
                tool_input={"command": rng.choice(_COMMANDS)},
            )

    def user_message(self) -> None:
        self.add(
            "message_request",
            self.gen.micros(1_000_000, 300_000_000),
            message_role="user",
            message_content=self.gen.content(0.01),
        )

    def response(self, model: str) -> None:
        rng = self.rng
        inp = min(20_000, 5 + int(rng.expovariate(1 / 800)))
        out = min(8_000, 10 + int(rng.expovariate(1 / 600)))
        write = read = 0
        if model.startswith("claude-"):
            if self.responses == 0:
                write = rng.randint(8_000, 25_000)
            elif rng.random() < 0.3:
                write = rng.randint(100, 4_000)
            if self.responses and rng.random() < 0.9:
                read = min(180_000, 3_000 + self.responses * rng.randint(400, 1_600))
        elif model == "gpt-4o":
            if self.responses and rng.random() < 0.5:
                read = min(100_000, 1_024 * rng.randint(1, 40))
        else:  # the mock agent echoes small messages
            inp, out = rng.randint(5, 50), rng.randint(5, 50)
        self.responses += 1
        counts = self.usage.setdefault(model, [0, 0, 0, 0])
        counts[0] += inp
        counts[1] += out
        counts[2] += write
        counts[3] += read
        self.add(
            "message_response",
            self.gen.micros(800_000, 40_000_000),
            message_role="assistant",
            message_content=self.gen.content(0.01),
            input_tokens=inp,
            output_tokens=out,
            total_tokens=inp + out,
        )

    # -- tools --------------------------------------------------------------

    def pick_tool(self) -> str:
        return self.rng.choices(list(_TOOL_WEIGHTS), weights=list(_TOOL_WEIGHTS.values()))[0]

    def file_path(self) -> str:
        return f"{self.workspace}/{self.rng.choice(_FILES)}"

    def tool_input(self, tool: str, command: str | None = None) -> Any:
        gen, rng = self.gen, self.rng
        gen.tool_calls += 1
        # Legacy rows kept a preview that is not a JSON object.
        if gen.tool_calls == 3:
            return f"{tool} {self.file_path()}"
        if gen.tool_calls == 40:
            return [tool, self.file_path()]
        if tool == "Read":
            return {"file_path": self.file_path()}
        if tool == "Edit":
            return {
                "file_path": self.file_path(),
                "old_string": gen.text(1, 1),
                "new_string": gen.text(1, 1),
            }
        if tool == "Write":
            return {"file_path": self.file_path(), "content": gen.text(2, 4)[:500]}
        if tool == "Bash":
            return {"command": command or rng.choice(_COMMANDS), "description": gen.text(1, 1)}
        if tool == "Grep":
            return {
                "pattern": rng.choice(_NOUNS).split()[0],
                "path": self.workspace,
                "output_mode": "content",
            }
        if tool == "WebFetch":
            return {"url": rng.choice(_URLS), "prompt": gen.text(1, 1)}
        return {"description": gen.text(1, 1)[:60], "prompt": gen.text(2, 5)}

    def tool_output(self, tool: str, tool_input: Any) -> str:
        gen, rng = self.gen, self.rng
        path = tool_input.get("file_path", "") if isinstance(tool_input, dict) else ""
        if tool == "Read":
            lines = gen.text(3, 8).split(". ")
            return "\n".join(f"{n:>6}\t{line}" for n, line in enumerate(lines, 1))
        if tool == "Edit":
            return f"The file {path} has been updated."
        if tool == "Write":
            return f"File created successfully at: {path}"
        if tool == "Grep":
            hits = rng.randint(0, 5)
            return "\n".join(
                f"{self.file_path()}:{rng.randint(1, 400)}: {gen.text(1, 1)}" for _ in range(hits)
            )
        return gen.text(1, 6)

    def tool_started(self, tool: str) -> tuple[str, Any]:
        use_id = self.gen.tool_use_id()
        tool_input = self.tool_input(tool)
        self.add(
            "tool_execution_started",
            self.gen.micros(50_000, 1_000_000),
            tool_name=tool,
            tool_use_id=use_id,
            tool_input=tool_input,
        )
        return use_id, tool_input

    def tool_pair(
        self, tool: str, *, command: str | None = None, output: str | None = None
    ) -> None:
        rng = self.rng
        use_id = self.gen.tool_use_id()
        tool_input = self.tool_input(tool, command)
        self.add(
            "tool_execution_started",
            self.gen.micros(50_000, 1_000_000),
            tool_name=tool,
            tool_use_id=use_id,
            tool_input=tool_input,
        )
        low, high = _TOOL_TIMES[tool]
        if tool == "Bash":  # mostly quick, occasionally a long build or test run
            took = min(high, low + int(rng.expovariate(1 / 4_000_000)))
        else:
            took = rng.randint(low, high)
        failed = output is None and rng.random() < (0.1 if tool == "Bash" else 0.03)
        self.add(
            "tool_execution_failed" if failed else "tool_execution_completed",
            took,
            tool_name=tool,
            tool_use_id=use_id,
            tool_input=tool_input,
            duration_seconds=took / 1_000_000,
            success=not failed,
            tool_output=(
                f"Error: exit code {rng.randint(1, 2)}\n{self.gen.text(1, 2)}"
                if failed
                else output or self.tool_output(tool, tool_input)
            ),
        )

    def tool_blocked(self) -> None:
        self.add(
            "tool_blocked",
            self.gen.micros(10_000, 200_000),
            success=False,
            tool_name="Bash",
            tool_use_id=self.gen.tool_use_id(),
            tool_input={"command": f"rm -rf {self.workspace}"},
            tool_output="Blocked by policy: destructive command outside the sandbox",
        )

    def task(self) -> None:
        """A Task tool call that runs a subagent, whose model calls happen inside it."""
        rng, gen = self.rng, self.gen
        use_id, tool_input = self.tool_started("Task")
        started = self.offset
        self.add(
            "subagent_started", gen.micros(10_000, 300_000), tool_name="Task", tool_use_id=use_id
        )
        for _ in range(rng.randint(1, min(3, self.room() - 2))):
            self.response(self.subagent or self.model)
        self.add(
            "subagent_stopped", gen.micros(10_000, 300_000), tool_name="Task", tool_use_id=use_id
        )
        completed = self.add(
            "tool_execution_completed",
            gen.micros(10_000, 200_000),
            tool_name="Task",
            tool_use_id=use_id,
            tool_input=tool_input,
            tool_output=gen.content(0.15),
        )
        completed["duration_seconds"] = (self.offset - started) / 1_000_000

    # -- git ------------------------------------------------------------------

    def git_info(self, info: dict[str, Any]) -> dict[str, Any]:
        gen = self.gen
        gen.git_operations += 1
        # Newer recorders add keys that readers must tolerate.
        if gen.git_operations == 3 or gen.rng.random() < 0.03:
            info["future_field"] = "x"
        return info

    def git_commit(self) -> None:
        rng, gen = self.rng, self.gen
        repo = rng.choice(self.repos)
        message = f"{rng.choice(['Fix', 'Add', 'Refactor', 'Update'])} {rng.choice(_NOUNS)}"
        sha = gen.sha()
        files, insertions, deletions = (
            rng.randint(1, 12),
            rng.randint(1, 400),
            rng.randint(0, 200),
        )
        self.tool_pair(
            "Bash",
            command=f'git commit -am "{message}"',
            output=(
                f"[{self.branch} {sha[:7]}] {message}\n {files} files changed, "
                f"{insertions} insertions(+), {deletions} deletions(-)"
            ),
        )
        info: dict[str, Any] = {
            "operation": "commit",
            "sha": sha,
            "branch": self.branch,
            "repo": repo,
            "message": message,
            "author": rng.choice(_AUTHORS),
            "files_changed": files,
            "insertions": insertions,
            "deletions": deletions,
        }
        if rng.random() < 0.3:
            info["estimated_tokens_added"] = insertions * rng.randint(8, 14)
            info["estimated_tokens_removed"] = deletions * rng.randint(8, 14)
        self.add("git_commit", gen.micros(20_000, 500_000), git=self.git_info(info))
        self.unpushed.append(sha)

    def git_push(self) -> None:
        rng, gen = self.rng, self.gen
        repo = rng.choice(self.repos)
        first = self.pushed_sha or self.unpushed[0]
        last = self.unpushed[-1]
        self.tool_pair(
            "Bash",
            command=f"git push origin {self.branch}",
            output=(
                f"To https://github.com/{repo}.git\n"
                f"   {first[:7]}..{last[:7]}  {self.branch} -> {self.branch}"
            ),
        )
        info = {
            "operation": "push",
            "branch": self.branch,
            "repo": repo,
            "remote": "origin",
            "remote_url": f"https://github.com/{repo}.git",
            "commits_count": len(self.unpushed),
            "commit_range": f"{first[:7]}..{last[:7]}",
        }
        self.add("git_push", gen.micros(300_000, 3_000_000), git=self.git_info(info))
        self.pushed_sha = last
        self.unpushed.clear()

    def git_branch_changed(self) -> None:
        rng, gen = self.rng, self.gen
        slug = (self.phase_id or "work")[:12].replace("_", "-")
        new_branch = f"agent/{slug}-{rng.getrandbits(16):04x}"
        info = {
            "operation": "checkout",
            "repo": rng.choice(self.repos),
            "branch": new_branch,
            "prev_branch": self.branch,
            "from_branch": self.branch,
            "to_branch": new_branch,
        }
        self.add("git_branch_changed", gen.micros(100_000, 2_000_000), git=self.git_info(info))
        self.branch = new_branch
