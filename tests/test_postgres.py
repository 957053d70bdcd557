"""PostgreSQL specifics: the statement timeout, and identical answers on both databases."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from sessiongraph.app import create_app
from sessiongraph.config import Settings
from sessiongraph.seed import seed_demo_data
from tests.helpers import cost, insert_sessions, session_row

TRUNCATE = "TRUNCATE workflows, sessions, operations RESTART IDENTITY CASCADE"


@pytest.mark.postgres_only
async def test_statement_timeout_is_a_clear_error_and_frees_the_connection(
    settings: Settings, engine: AsyncEngine
) -> None:
    # Given a server whose statements may run 200 ms, and a table someone holds locked
    app = create_app(settings.model_copy(update={"statement_timeout_ms": 200, "pool_size": 1}))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
        engine.connect() as blocker,
    ):
        await blocker.execute(sa.text("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE"))

        # When a query needs that table
        response = await asyncio.wait_for(
            http.post("/graphql", json={"query": "{ sessions { totalCount } }"}), timeout=10
        )
        await blocker.rollback()

        # Then it fails fast with a clear error, and the (only) connection serves again
        [error] = response.json()["errors"]
        assert error["extensions"] == {"code": "QUERY_TOO_COMPLEX", "limit": "statementTimeout"}
        assert "statement timeout" in error["message"]
        after = await http.post("/graphql", json={"query": "{ sessions { totalCount } }"})
        assert after.json() == {"data": {"sessions": {"totalCount": 0}}, "extensions": cost(50)}


@pytest.mark.postgres_only
async def test_connections_never_compile_statements(engine: AsyncEngine) -> None:
    # A page the planner overestimates would cross jit_above_cost and be compiled
    # first, for far longer than it runs.
    # Nor start parallel workers for a statement that runs in less time than they take
    # to start.
    async with engine.connect() as conn:
        assert (await conn.execute(sa.text("SHOW jit"))).scalar_one() == "off"
        assert (await conn.execute(sa.text("SHOW parallel_setup_cost"))).scalar_one() == "10000"
        assert (await conn.execute(sa.text("SHOW timezone"))).scalar_one() == "UTC"


@pytest.mark.postgres_only
async def test_stats_and_filtered_pages_are_planned_for_their_values(
    settings: Settings, engine: AsyncEngine
) -> None:
    # Given a server with one connection, whose statements may run 300 ms
    app = create_app(
        settings.model_copy(update={"pool_size": 1, "max_overflow": 0, "statement_timeout_ms": 300})
    )
    seen: list[str] = []

    def record(_c: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        sa.event.listen(app.state.engine.sync_engine, "before_cursor_execute", record)
        queries = [
            "{ sessionStats(filter: {startedAt: {lastSeconds: 86400}}) { count costByModel "
            "{ model } } }",
            '{ sessions(first: 5, filter: {agentModel: {eq: "m"}}) { nodes { id } } }',
            "{ sessions(first: 5) { nodes { id } } }",
        ]
        for query in queries:
            seen.clear()
            response = await http.post("/graphql", json={"query": query})
            assert "errors" not in response.json(), response.json()
            # Then stats and filtered pages are read with custom plans, the plain page
            # with whatever plan the cache holds
            reads = [s for s in seen if not s.startswith(("SET", "RESET"))]
            if "filter" in query:
                assert seen == [
                    s
                    for read in reads
                    for s in (
                        "SET plan_cache_mode = force_custom_plan",
                        read,
                        "RESET plan_cache_mode",
                    )
                ], seen
            else:
                assert seen == reads
        # and the connection is left as it was, even after a read the server cancelled
        async with engine.connect() as blocker:
            await blocker.execute(sa.text("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE"))
            response = await http.post("/graphql", json={"query": queries[0]})
            await blocker.rollback()
        assert response.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
        async with app.state.engine.connect() as conn:
            assert (await conn.execute(sa.text("SHOW plan_cache_mode"))).scalar_one() == "auto"


@pytest.fixture
async def both_apps(postgres_url: str, tmp_path: Path) -> AsyncIterator[list[httpx.AsyncClient]]:
    """The same demo data behind an app on SQLite and an app on PostgreSQL."""
    urls = [f"sqlite+aiosqlite:///{tmp_path / 'same.db'}", postgres_url]
    async with AsyncExitStack() as stack:
        clients = []
        for url in urls:
            app = create_app(Settings(database_url=url, cursor_secret="one-secret-for-both-apps"))
            await stack.enter_async_context(app.router.lifespan_context(app))
            engine: AsyncEngine = app.state.engine
            if engine.dialect.name == "postgresql":
                async with engine.begin() as conn:
                    await conn.execute(sa.text(TRUNCATE))
            await seed_demo_data(engine, sessions=80, seed=11)
            await insert_sessions(engine, *_tricky_sessions())
            transport = httpx.ASGITransport(app=app)
            client = httpx.AsyncClient(transport=transport, base_url="http://t")
            clients.append(await stack.enter_async_context(client))
        yield clients


def _tricky_sessions() -> list[dict[str, Any]]:
    """Ids with LIKE wildcards and a backslash, ties and NULLs, exact decimals, odd JSON."""
    from decimal import Decimal

    return [
        session_row(id="abc%def", total_cost_usd=Decimal("0.1"), total_tokens=7),
        session_row(id="abc_def", total_cost_usd=Decimal("0.10"), total_tokens=7),
        session_row(id="abcXdef", total_cost_usd=Decimal("12345.6789012345"), started_at=None),
        session_row(id="a\\b", metadata={"z": 1, "a": {"y": [1, {"b": 2, "a": 1}]}}),
    ]


QUERIES = [
    """{ sessions(first: 200) { totalCount pageInfo { endCursor hasNextPage } nodes {
        id workflowId workflowName workflow { id name } executionId phaseId phaseDisplay
        milestoneId status agentProvider agentModel agentModelDisplay repos reposDisplay
        workspacePath inputTokens inputTokensDisplay outputTokens outputTokensDisplay
        cacheCreationTokens cacheCreationTokensDisplay cacheReadTokens cacheReadTokensDisplay
        totalTokens totalTokensDisplay totalCostUsd totalCostDisplay
        costByModel { model costUsd } startedAt completedAt durationSeconds durationDisplay
        errorMessage metadata operationCount } } }""",
    *(
        f"{{ sessions(first: 37, orderBy: {{field: {field}, direction: {direction}}}) "
        "{ edges { cursor node { id } } pageInfo { endCursor } } }"
        for field in (
            "STARTED_AT",
            "COMPLETED_AT",
            "TOTAL_COST_USD",
            "TOTAL_TOKENS",
            "DURATION_SECONDS",
        )
        for direction in ("ASC", "DESC")
    ),
    """{ sessions(statuses: [COMPLETED, FAILED], startedAfter: "2026-04-01T00:00:00",
        startedBefore: "2026-04-10T12:00:00+02:00") { totalCount nodes { id startedAt } } }""",
    '{ a: session(id: "abc%") { id } }',
    '{ b: session(id: "abc_") { id } }',
    '{ d: session(id: "a\\\\") { id metadata } }',
    """{ sessions(first: 20, statuses: [COMPLETED]) { nodes { id operations(first: 30) {
        totalCount pageInfo { endCursor hasNextPage } edges { cursor node {
          operationId operationType timestamp durationSeconds success inputTokens outputTokens
          totalTokens toolName toolUseId toolInput toolOutput messageRole messageContent
          thinkingContent git { operation sha branch repo message filesChanged insertions
          deletions commitsCount } gitSha } } } } } }""",
    """{ sessions(first: 50) { nodes { id
        commits: operations(types: ["git_commit", "git_push"], first: 5) {
          totalCount nodes { git { sha } } }
        failed: operations(success: false) { totalCount nodes { operationId } } } } }""",
]


_DURATION = """duration { count avgSeconds minSeconds maxSeconds p50Seconds p90Seconds
    p95Seconds p99Seconds avgDisplay p99Display }"""
_TOTALS = """totals { inputTokens outputTokens cacheCreationTokens cacheReadTokens totalTokens
    totalTokensDisplay totalCostUsd totalCostDisplay }"""
#: sessionStats, every field, read from the sessions and (the same scopes) the rollups.
STATS_QUERIES = [
    f"""{{ sessionStats {{ count {_TOTALS} {_DURATION} byStatus {{ status count }}
        costByModel {{ model costUsd }} tools(first: 100) {{ toolName calls failures
        totalDurationSeconds avgDurationSeconds }} }} }}""",
    *(
        f"""{{ sessionStats {{ groupBy(by: {key}, first: 200, orderBy: {{field: {field}}}) {{
            key label count {_TOTALS} {_DURATION} }} }} }}"""
        for key in ("WORKFLOW", "STATUS", "AGENT_PROVIDER", "AGENT_MODEL", "REPO", "PHASE")
        for field in ("COUNT", "TOTAL_COST_USD", "KEY")
    ),
    *(
        f"""{{ sessionStats(filter: {{status: [COMPLETED, FAILED]}}) {{
            timeSeries(bucket: {bucket}, utcOffsetMinutes: {offset}, field: {field}) {{
              start end count {_TOTALS} byStatus {{ status count }}
              costByModel {{ model costUsd }} {_DURATION if field == "COMPLETED_AT" else ""} }}
        }} }}"""
        for bucket, offset, field in (
            ("HOUR", 0, "STARTED_AT"),
            ("DAY", 0, "STARTED_AT"),
            ("DAY", -330, "STARTED_AT"),
            ("WEEK", 60, "STARTED_AT"),
            ("MONTH", 0, "COMPLETED_AT"),
        )
    ),
    f"""{{ sessionStats(filter: {{startedAt: {{gt: "2026-04-03T10:20:00Z",
        lte: "2026-04-09T00:00:00Z"}}, or: [{{workflowId: {{prefix: "e"}}}},
        {{not: {{status: [RUNNING]}}}}]}}) {{ count {_TOTALS} byStatus {{ status count }}
        costByModel {{ model costUsd }} }} }}""",
]


@pytest.mark.parametrize("query", QUERIES + STATS_QUERIES)
async def test_both_databases_give_identical_responses(
    both_apps: list[httpx.AsyncClient], query: str
) -> None:
    sqlite, postgres = [
        await client.post("/graphql", json={"query": query}) for client in both_apps
    ]

    assert sqlite.status_code == postgres.status_code == 200
    assert "errors" not in sqlite.json(), sqlite.json()
    assert sqlite.content == postgres.content, _first_difference(sqlite.json(), postgres.json())


async def test_ambiguous_prefix_error_is_identical(both_apps: list[httpx.AsyncClient]) -> None:
    query = '{ c: session(id: "abc") { id } }'

    sqlite, postgres = [await c.post("/graphql", json={"query": query}) for c in both_apps]

    assert sqlite.json()["errors"][0]["extensions"]["candidates"] == [
        "abc%def",
        "abcXdef",
        "abc_def",
    ]
    assert sqlite.content == postgres.content


async def test_cursor_from_one_database_continues_on_the_other(
    both_apps: list[httpx.AsyncClient],
) -> None:
    sqlite, postgres = both_apps
    query = """query ($after: String) {
        sessions(first: 10, after: $after, orderBy: {field: TOTAL_COST_USD, direction: ASC}) {
          nodes { id } pageInfo { endCursor } } }"""
    first = (await sqlite.post("/graphql", json={"query": query})).json()
    cursor = first["data"]["sessions"]["pageInfo"]["endCursor"]

    pages = [
        (
            await client.post("/graphql", json={"query": query, "variables": {"after": cursor}})
        ).json()
        for client in (sqlite, postgres)
    ]

    assert pages[0] == pages[1]
    assert pages[0]["data"]["sessions"]["nodes"]


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if type(a) is not type(b):
        return f"{path}: {a!r} != {b!r}"
    if isinstance(a, dict):
        if list(a) != list(b):
            return f"{path}: keys {list(a)} != {list(b)}"
        for key in a:
            if a[key] != b[key] or json.dumps(a[key]) != json.dumps(b[key]):
                return _first_difference(a[key], b[key], f"{path}.{key}")
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if json.dumps(x) != json.dumps(y):
                return _first_difference(x, y, f"{path}[{i}]")
    return f"{path}: {a!r} != {b!r}"
