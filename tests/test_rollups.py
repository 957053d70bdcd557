"""sessionStats from the rollups equals sessionStats from the sessions, on SQLite and
PostgreSQL: ``gql`` sends every query to the plain app too (``stats_rollups`` off), and
the two responses must be the same bytes. The data is written every way a session
changes (inserts, completeSession, import, updates and deletes by another writer) and
the windows put their edges on, next to and between hour and day boundaries."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from sessiongraph.config import Settings
from sessiongraph.db import migrate
from sessiongraph.db.engine import create_engine
from sessiongraph.db.tables import session_model_rollups, session_rollups, sessions
from sessiongraph.importer import import_file
from tests.helpers import GraphQLClient, insert_sessions, insert_workflow, session_row
from tests.test_database_json import statements

#: Midnight UTC, a Monday: the data spans the four days around it.
DAY = datetime(2026, 3, 30, tzinfo=UTC)
STATUSES = ["pending", "running", "completed", "failed", "cancelled"]
WORKFLOWS = ["wf-a", "wf-b", "wf-ab", None]
MODEL_COSTS: list[Any] = [
    {},
    {"opus": "1.25"},
    {"opus": "0.0000000001", "sonnet": "3"},
    {"sonnet": "12", "bad": "1e3", "neg": "-1", "dot": "1.", "text": "abc"},
    {"haiku": "0"},
    {"nested": {"a": 1}, "opus": 2},
]
STATS = """query($filter: SessionFilter) { sessionStats(filter: $filter) {
  count totals { inputTokens outputTokens cacheCreationTokens cacheReadTokens totalTokens
                 totalCostUsd totalCostDisplay }
  byStatus { status count }
  costByModel { model costUsd }
  duration { count avgSeconds minSeconds maxSeconds p50Seconds p95Seconds }
  durationAlone: duration { count avgSeconds minSeconds maxSeconds }
  groupBy(by: WORKFLOW, first: 10) { key label count totals { totalCostUsd totalTokens }
                                     duration { count avgSeconds maxSeconds p90Seconds } }
  statusDurations: groupBy(by: STATUS) { key duration { count avgSeconds minSeconds } }
  statuses: groupBy(by: STATUS, first: 10, orderBy: {field: KEY, direction: ASC}) { key count }
} }"""
SERIES = """query($filter: SessionFilter, $bucket: TimeBucket!, $offset: Int, $from: DateTime,
    $to: DateTime) { sessionStats(filter: $filter) {
  timeSeries(bucket: $bucket, utcOffsetMinutes: $offset, from: $from, to: $to) {
    start end count totals { totalTokens totalCostUsd } byStatus { status count }
    costByModel { model costUsd } duration { count avgSeconds minSeconds p50Seconds } }
  durations: timeSeries(bucket: $bucket, utcOffsetMinutes: $offset, from: $from, to: $to) {
    start count duration { count avgSeconds maxSeconds } }
} }"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared settings with a longer statement timeout: these tests send hundreds of
    sessionStats queries of a dozen statements, to two apps at once, and on a loaded CI
    machine one of them met the 5 s default (each runs in milliseconds on its own)."""
    return settings.model_copy(update={"statement_timeout_ms": 60_000})


def _instant(rng: random.Random) -> datetime:
    """A time in the five days around ``DAY`` (across a month's end), often exactly on
    an hour or a day; sometimes in the weeks around them."""
    hours = rng.randrange(-48, 72)
    kind = rng.random()
    if kind > 0.85:
        return DAY + timedelta(seconds=rng.randrange(-18 * 86400, 18 * 86400))
    if kind < 0.2:
        return DAY + timedelta(hours=hours)
    if kind < 0.3:
        return DAY + timedelta(hours=hours) - timedelta(microseconds=1)
    return DAY + timedelta(
        hours=hours, seconds=rng.randrange(3600), microseconds=rng.randrange(10**6)
    )


def _row(rng: random.Random, n: int) -> dict[str, Any]:
    tokens = [rng.randrange(0, 5000) for _ in range(4)]
    return session_row(
        id=f"r-{n:03}",
        status=rng.choice(STATUSES),
        workflow_id=rng.choice(WORKFLOWS),
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cache_creation_tokens=tokens[2],
        cache_read_tokens=tokens[3],
        total_tokens=sum(tokens),
        total_cost_usd=Decimal(rng.randrange(0, 10**6)).scaleb(-rng.choice([0, 2, 4, 10])),
        cost_by_model=rng.choice(MODEL_COSTS),
        started_at=None if rng.random() < 0.1 else _instant(rng),
    )


def _filters(rng: random.Random) -> list[dict[str, Any] | None]:
    """Scopes the rollups answer: bounds on startedAt of every kind, dimensions nested."""
    found: list[dict[str, Any] | None] = [None, {"status": ["COMPLETED"]}]
    for _ in range(14):
        bounds: dict[str, Any] = {}
        for operator in rng.sample(["gt", "gte", "lt", "lte"], rng.randrange(1, 3)):
            bounds[operator] = _instant(rng).isoformat()
        scope: dict[str, Any] = {"startedAt": bounds}
        choice = rng.random()
        if choice < 0.25:
            scope["workflowId"] = {"eq": rng.choice(["wf-a", "wf-b"])}
        elif choice < 0.45:
            scope["or"] = [{"workflowId": {"prefix": "wf-a"}}, {"status": ["FAILED", "PENDING"]}]
        elif choice < 0.6:
            scope["not"] = {"workflowId": {"isNull": True}}
        elif choice < 0.7:
            scope["and"] = [{"startedAt": {"gte": _instant(rng).isoformat()}}]
        found.append(scope)
    found.append({"startedAt": {"lastSeconds": 31_622_400}, "workflowId": {"in": ["wf-a"]}})
    # Whole months inside: month rows between day rows
    found.append({"startedAt": {"gte": "2026-02-20T00:00:00Z", "lt": "2026-05-10T00:00:00Z"}})
    found.append(
        {
            "startedAt": {"gt": "2026-02-28T23:30:00.5Z", "lte": "2026-04-30T23:59:59Z"},
            "status": ["COMPLETED", "FAILED"],
        }
    )
    found.append({"startedAt": {"gte": "2026-04-01T00:00:00Z"}, "workflowId": {"eq": "wf-b"}})
    return found


async def _write(gql: GraphQLClient, engine: AsyncEngine, tmp_path: Path) -> None:
    """Sessions written, then changed every way a session changes."""
    rng = random.Random(13)
    for workflow in ("wf-a", "wf-b"):
        await insert_workflow(engine, workflow, f"Workflow {workflow}")
    rows = [_row(rng, n) for n in range(120)]
    for n, row in enumerate(rows):
        if n % 3 == 0 and row["status"] in ("pending", "running"):
            row["cost_by_model"] = {}
    await insert_sessions(engine, *rows)
    # completeSession: status, tokens, cost and models change
    open_ones = [row for row in rows if row["status"] in ("pending", "running")]
    for row in open_ones[: len(open_ones) // 2]:
        await gql(
            """mutation($id: String!, $costs: [ModelCostInput!]) {
              completeSession(id: $id, status: FAILED, totalCostUsd: "7.0000000003",
                costByModel: $costs, inputTokens: 5) { id } }""",
            {"id": row["id"], "costs": [{"model": "opus", "costUsd": "2.5"}]},
        )
    # import: a snapshot changing some sessions and adding new ones
    records = []
    for row in rows[:20]:
        started = row["started_at"]
        records.append(
            {
                "id": row["id"],
                "status": "completed",
                "workflow_id": "wf-b",
                "total_cost_usd": "1.5",
                "cost_by_model": {"sonnet": "1.5"},
                "started_at": (started + timedelta(hours=5)).isoformat() if started else None,
            }
        )
    records.append({"id": "imported-1", "status": "running", "started_at": DAY.isoformat()})
    path = tmp_path / "snapshot.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    report = await import_file(engine, path)
    assert not report.skipped
    # another writer: updates and deletes
    async with engine.begin() as conn:
        await conn.execute(
            sessions.update()
            .where(sessions.c.id.in_([row["id"] for row in rows[30:40]]))
            .values(workflow_id=None, status="cancelled", total_tokens=sessions.c.total_tokens + 1)
        )
        await conn.execute(
            sessions.update()
            .where(sessions.c.id.in_([row["id"] for row in rows[40:45]]))
            .values(started_at=None)
        )
        await conn.execute(
            sessions.delete().where(sessions.c.id.in_([r["id"] for r in rows[50:60]]))
        )


async def test_stats_from_the_rollups_are_those_of_the_sessions(
    gql: GraphQLClient, engine: AsyncEngine, tmp_path: Path
) -> None:
    await _write(gql, engine, tmp_path)
    rng = random.Random(7)
    scopes = _filters(rng)
    for scope in scopes:
        with statements(engine) as seen:
            data = await gql(STATS, {"filter": scope})
        # The fast path did read the rollups (the plain app sums the sessions) ...
        assert any("session_rollups" in statement for statement in seen), scope
        # ... their month rows too, where a month lies wholly inside
        if scope is None or scope in scopes[-3:]:
            assert any("grain = 'm'" in statement for statement in seen), scope
        assert data["sessionStats"]["count"] == sum(
            s["count"] for s in data["sessionStats"]["byStatus"]
        )
    cases = [("DAY", 0), ("WEEK", 0), ("MONTH", 0), ("HOUR", 0), ("DAY", -300), ("HOUR", 120)]
    for bucket, offset in cases:
        scopes = _filters(rng)
        for scope in scopes[:6] + scopes[-3:]:
            variables = {"filter": scope, "bucket": bucket, "offset": offset}
            if rng.random() < 0.5:
                variables |= {"from": _instant(rng).isoformat(), "to": _instant(rng).isoformat()}
            with statements(engine) as seen:
                data = await gql(SERIES, variables)
            # (No buckets: an empty window without from and to, or from after to.)
            if data["sessionStats"]["timeSeries"]:
                assert any("session_rollups" in statement for statement in seen), variables


async def test_scopes_the_rollups_cannot_answer_read_the_sessions(
    gql: GraphQLClient, engine: AsyncEngine, tmp_path: Path
) -> None:
    await _write(gql, engine, tmp_path)
    unanswerable: list[tuple[str, dict[str, Any]]] = [
        (STATS, {"filter": {"agentModel": {"eq": "claude-sonnet-4-6"}}}),
        (
            STATS,
            {"filter": {"or": [{"startedAt": {"lt": DAY.isoformat()}}, {"status": ["FAILED"]}]}},
        ),
        (STATS, {"filter": {"not": {"startedAt": {"lt": DAY.isoformat()}}}}),
        (SERIES, {"bucket": "HOUR", "offset": 330}),
        (SERIES, {"bucket": "DAY", "offset": 45}),
        ("{ sessionStats { groupBy(by: AGENT_MODEL) { key count } } }", {}),
    ]
    for query, variables in unanswerable:
        variables.setdefault("bucket", "DAY")
        with statements(engine) as seen:
            await gql(query, variables)
        assert not any("rollups" in statement for statement in seen), query


def _contents(rows: list[Any]) -> list[tuple[Any, ...]]:
    return sorted(tuple(row) for row in rows)


async def _rollup_rows(engine: AsyncEngine) -> tuple[list[Any], list[Any]]:
    async with engine.connect() as conn:
        kept = []
        for table, count in ((session_rollups, "sessions"), (session_model_rollups, "entries")):
            result = await conn.execute(sa.select(table).where(table.c[count] != 0))
            kept.append(_contents(list(result)))
    return kept[0], kept[1]


async def test_the_migration_sums_the_sessions_already_stored(
    gql: GraphQLClient, engine: AsyncEngine, tmp_path: Path, settings: Any
) -> None:
    """Rows kept by the triggers as sessions changed equal those the migration computes
    for the same sessions stored before it (a database at revision 0002)."""
    await _write(gql, engine, tmp_path)
    kept = await _rollup_rows(engine)
    async with engine.connect() as conn:
        stored = [dict(row._mapping) for row in await conn.execute(sa.select(sessions))]
    if settings.is_sqlite:
        url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        other = create_engine(settings.model_copy(update={"database_url": url}))
    else:
        other = engine
        async with engine.begin() as conn:
            await conn.execute(sa.text("DROP TABLE session_rollups, session_model_rollups"))
            await conn.execute(sa.text("DROP FUNCTION sessiongraph_rollups_row() CASCADE"))
            await conn.execute(sa.text("DROP FUNCTION sessiongraph_rollups_clear() CASCADE"))
            await conn.execute(sa.text("DROP FUNCTION sessiongraph_rollup(integer, sessions)"))
            await conn.execute(sa.text("DROP INDEX ix_sessions_started_at_durations"))
            await conn.execute(sa.text("UPDATE alembic_version SET version_num = '0002'"))
    try:
        if settings.is_sqlite:
            await migrate.upgrade(other, "0002")
            async with other.begin() as conn:
                await conn.execute(sa.text("INSERT INTO workflows (id) VALUES ('wf-a'), ('wf-b')"))
                await conn.execute(sessions.insert(), stored)
        await migrate.upgrade(other)
        assert await _rollup_rows(other) == kept
        assert any(row[0] == "m" for row in kept[0])
        assert any(row[0] == "m" for row in kept[1])
        # ... and from the revision before months
        await migrate.downgrade(other, "0003")
        months = await _rollup_rows(other)
        assert not any(row[0] == "m" for rows in months for row in rows)
        await migrate.upgrade(other)
        assert await _rollup_rows(other) == kept
    finally:
        if other is not engine:
            await other.dispose()


async def test_a_session_a_microsecond_before_the_hour_is_in_the_hour_it_started(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    """SQLite's date functions round fractions to milliseconds; buckets must not."""
    late = DAY - timedelta(microseconds=1)
    await insert_sessions(
        engine,
        session_row(id="late", started_at=late),
        session_row(id="on-time", started_at=DAY),
    )
    for bucket in ("HOUR", "DAY", "WEEK", "MONTH"):
        series = (await gql(SERIES, {"bucket": bucket}))["sessionStats"]["timeSeries"]
        assert [(b["start"], b["count"]) for b in series][:1] == [
            (
                {
                    "HOUR": "2026-03-29T23:00:00+00:00",
                    "DAY": "2026-03-29T00:00:00+00:00",
                    "WEEK": "2026-03-23T00:00:00+00:00",
                    "MONTH": "2026-03-01T00:00:00+00:00",
                }[bucket],
                1 if bucket in ("HOUR", "DAY", "WEEK") else 2,
            )
        ]
    edge = {
        "startedAt": {"gt": (late - timedelta(microseconds=1)).isoformat(), "lt": DAY.isoformat()}
    }
    assert (await gql(STATS, {"filter": edge}))["sessionStats"]["count"] == 1


async def test_concurrent_writes_keep_the_rollups_exact(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    """Sessions of one hour and workflow started and completed at once: every write
    adds to the same rollup rows."""
    await insert_workflow(engine, "wf-a", None)
    start = """mutation($id: String!) { startSession(input: {id: $id, workflowId: "wf-a",
        startedAt: "2026-03-30T10:15:00Z"}) { id } }"""
    complete = """mutation($id: String!) { completeSession(id: $id, status: COMPLETED,
        totalCostUsd: "0.3333333333", costByModel: [{model: "opus", costUsd: "0.1"}],
        inputTokens: 3) { id } }"""
    ids = [f"c-{n:02}" for n in range(24)]
    await asyncio.gather(*(gql(start, {"id": i}) for i in ids))
    await asyncio.gather(*(gql(complete, {"id": i}) for i in ids[::2]))
    data = (await gql(STATS, {"filter": {"startedAt": {"gte": DAY.isoformat()}}}))["sessionStats"]
    assert data["count"] == 24
    assert data["totals"]["totalCostUsd"] == "3.9999999996"
    assert data["costByModel"] == [{"model": "opus", "costUsd": "1.2"}]
    assert [s["count"] for s in data["byStatus"]] == [0, 12, 12, 0, 0]


async def test_a_model_name_too_long_to_sum_is_refused(gql: GraphQLClient) -> None:
    await gql("""mutation { startSession(input: {id: "long"}) { id } }""")
    error = await gql.error(
        """mutation($model: String!) { completeSession(id: "long", status: COMPLETED,
            costByModel: [{model: $model, costUsd: "1"}]) { id } }""",
        {"model": "m" * 513},
        code="BAD_USER_INPUT",
    )
    assert "costByModel[0].model" in error["message"]
