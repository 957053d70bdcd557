"""sessionStats against figures computed here from the rows the test wrote, on SQLite and
PostgreSQL (and every query also with the compiled path off: ``gql`` compares)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from sessiongraph import display
from sessiongraph.db.tables import session_tools
from tests.helpers import GraphQLClient, insert_session, insert_workflow
from tests.test_database_json import statements

STATUSES = ["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"]
T = datetime(2026, 3, 30, 23, 30, tzinfo=UTC)  # a Monday, late evening UTC


def _sessions() -> list[dict[str, Any]]:
    rows = []
    models = ["claude-opus-4-7", "claude-sonnet-4-6", None, "gpt-4o"]
    repos: list[Any] = [["acme/api", " acme/web ", "acme/api"], ["  ", "x/y"], [], {"no": 1}, [7]]
    for n in range(14):
        rows.append(
            {
                "id": f"s-{n:02}",
                "status": ["completed", "failed", "running", "cancelled", "pending"][n % 5],
                "workflow_id": ["wf-1", "wf-2", None, "wf-none"][n % 4],
                "agent_provider": ["claude", "openai", None][n % 3],
                "agent_model": models[n % 4],
                "phase_id": ["research_phase", None][n % 2],
                "repos": repos[n % 5],
                "input_tokens": 1000 * n,
                "output_tokens": 7 * n,
                "cache_read_tokens": 2**30 if n == 13 else n,
                "cache_creation_tokens": 3,
                "total_tokens": 1007 * n + 3 + (2**30 if n == 13 else n),
                "total_cost_usd": Decimal("0.1") * n + Decimal("0.0000000001"),
                "cost_by_model": {"claude-opus-4-7": "0.1", "gpt-4o": f"{n}.25", "bad": "1e3"},
                "started_at": None if n == 12 else T + timedelta(hours=7 * n),
                "duration_seconds": None if n % 6 == 5 else 0.1 + 3.3 * n * n,
            }
        )
    return rows


@pytest.fixture
async def rows(engine: AsyncEngine) -> list[dict[str, Any]]:
    await insert_workflow(engine, "wf-1", "Release")
    await insert_workflow(engine, "wf-2", None)
    made = _sessions()
    for row in made:
        await insert_session(engine, **row)
    return made


def _percentile(values: list[float], p: int) -> float:
    ordered = sorted(values)
    position = p / 100 * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (position - low) * (ordered[high] - ordered[low]), 6)


def _durations(rows: list[dict[str, Any]]) -> dict[str, Any]:
    values = [r["duration_seconds"] for r in rows if r["duration_seconds"] is not None]
    if not values:
        return {"count": 0, "avgSeconds": None, "minSeconds": None, "p50Seconds": None}
    return {
        "count": len(values),
        "avgSeconds": round(sum(values) / len(values), 6),
        "minSeconds": min(values),
        "p50Seconds": _percentile(values, 50),
        "p95Seconds": _percentile(values, 95),
    }


DURATION = "duration { count avgSeconds minSeconds p50Seconds p95Seconds }"
TOTALS = "totals { inputTokens cacheReadTokens totalTokens totalCostUsd totalCostDisplay }"


def _totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    cost = sum((r["total_cost_usd"] for r in rows), Decimal(0))
    return {
        "inputTokens": sum(r["input_tokens"] for r in rows),
        "cacheReadTokens": sum(r["cache_read_tokens"] for r in rows),
        "totalTokens": sum(r["total_tokens"] for r in rows),
        "totalCostUsd": format(cost.normalize(), "f"),
        "totalCostDisplay": display.format_total_cost(cost),
    }


async def test_the_overall_figures_are_those_of_every_row(
    gql: GraphQLClient, rows: list[dict[str, Any]]
) -> None:
    data = await gql(
        f"{{ sessionStats {{ count {TOTALS} {DURATION} byStatus {{ status count }} "
        "costByModel { model costUsd } } }"
    )

    found = data["sessionStats"]
    assert found["count"] == len(rows)
    assert found["totals"] == _totals(rows)
    expected = _durations(rows)
    assert {k: found["duration"][k] for k in expected} == expected
    counts = defaultdict(int, dict.fromkeys(STATUSES, 0))
    for row in rows:
        counts[row["status"].upper()] += 1
    assert found["byStatus"] == [{"status": s, "count": counts[s]} for s in STATUSES]
    gpt = sum(Decimal(f"{n}.25") for n in range(len(rows)))
    assert found["costByModel"] == [
        {"model": "gpt-4o", "costUsd": format(gpt.normalize(), "f")},
        {"model": "claude-opus-4-7", "costUsd": format((Decimal("0.1") * len(rows)), "f")},
    ]  # "1e3" is no plain decimal: left out, as a session's costByModel leaves it


def _group(rows: list[dict[str, Any]], key_of: Any) -> dict[Any, list[dict[str, Any]]]:
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        for key in key_of(row):
            groups[key].append(row)
    return groups


def _repos(row: dict[str, Any]) -> list[str | None]:
    entries = row["repos"] if isinstance(row["repos"], list) else []
    kept = sorted({e.strip() for e in entries if isinstance(e, str) and e.strip()})
    return list(kept) or [None]


KEYS = {
    "WORKFLOW": lambda r: [r["workflow_id"]],
    "STATUS": lambda r: [r["status"].upper()],
    "AGENT_PROVIDER": lambda r: [r["agent_provider"]],
    "AGENT_MODEL": lambda r: [r["agent_model"]],
    "PHASE": lambda r: [r["phase_id"]],
    "REPO": _repos,
}


def _label(by: str, key: str | None) -> str | None:
    if key is None:
        return None
    return {
        "WORKFLOW": {"wf-1": "Release"}.get(key, key),
        "PHASE": display.format_phase(key),
        "AGENT_MODEL": display.format_model_compact(key),
        "REPO": display.format_repos([key]),
    }.get(by, key)


@pytest.mark.parametrize("by", list(KEYS))
async def test_groups_hold_their_sessions_largest_first_ties_by_key_null_last(
    gql: GraphQLClient, rows: list[dict[str, Any]], by: str
) -> None:
    data = await gql(
        f"{{ sessionStats {{ groupBy(by: {by}, first: 200) {{ key label count {TOTALS} "
        f"{DURATION} }} }} }}"
    )

    groups = _group(rows, KEYS[by])
    order = sorted(groups, key=lambda k: (-len(groups[k]), k is None, k or ""))
    found = data["sessionStats"]["groupBy"]
    assert [g["key"] for g in found] == order
    for group in found:
        members = groups[group["key"]]
        assert group["label"] == _label(by, group["key"])
        assert group["count"] == len(members)
        assert group["totals"] == _totals(members)
        expected = _durations(members)
        assert {k: group["duration"][k] for k in expected} == expected


@pytest.mark.parametrize("direction", ["ASC", "DESC"])
async def test_groups_by_key_keep_the_null_key_last_and_first_cuts_the_list(
    gql: GraphQLClient, rows: list[dict[str, Any]], direction: str
) -> None:
    data = await gql(
        "{ sessionStats { all: groupBy(by: AGENT_MODEL, orderBy: {field: KEY, direction: "
        f"{direction}}}) {{ key }} two: groupBy(by: AGENT_MODEL, first: 2, orderBy: "
        f"{{field: TOTAL_COST_USD, direction: {direction}}}) "
        "{ key totals { totalCostUsd } } } }"
    )

    keys = sorted({r["agent_model"] for r in rows if r["agent_model"] is not None})
    expected = (keys if direction == "ASC" else keys[::-1]) + [None]
    assert [g["key"] for g in data["sessionStats"]["all"]] == expected
    costs = [Decimal(g["totals"]["totalCostUsd"]) for g in data["sessionStats"]["two"]]
    assert len(costs) == 2
    assert costs == sorted(costs, reverse=direction == "DESC")


@pytest.mark.parametrize("first", [0, 201, -1])
async def test_a_group_count_out_of_bounds_is_refused(
    gql: GraphQLClient, rows: list[dict[str, Any]], first: int
) -> None:
    body = await gql.raw(f"{{ sessionStats {{ groupBy(by: STATUS, first: {first}) {{ key }} }} }}")

    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert body["data"] == {"sessionStats": None}


def _local_start(instant: datetime, bucket: str, offset: int) -> datetime:
    local = instant.astimezone(UTC).replace(tzinfo=None) + timedelta(minutes=offset)
    hour = local.replace(minute=0, second=0, microsecond=0)
    day = hour.replace(hour=0)
    return {
        "HOUR": hour,
        "DAY": day,
        "WEEK": day - timedelta(days=day.weekday()),
        "MONTH": day.replace(day=1),
    }[bucket]


@pytest.mark.parametrize("offset", [0, 330, -300, 840, -840])
@pytest.mark.parametrize("bucket", ["HOUR", "DAY", "WEEK", "MONTH"])
async def test_buckets_start_at_local_boundaries_and_count_every_session_in_them(
    gql: GraphQLClient, rows: list[dict[str, Any]], bucket: str, offset: int
) -> None:
    data = await gql(
        f"{{ sessionStats {{ timeSeries(bucket: {bucket}, utcOffsetMinutes: {offset}) "
        f"{{ start end count totals {{ totalCostUsd }} byStatus {{ status count }} "
        "duration { count p50Seconds } } } }"
    )

    series = data["sessionStats"]["timeSeries"]
    dated = [r for r in rows if r["started_at"] is not None]
    assert sum(b["count"] for b in series) == len(dated)
    shift = timedelta(minutes=offset)
    by_start: dict[datetime, list[dict[str, Any]]] = defaultdict(list)
    for row in dated:
        by_start[_local_start(row["started_at"], bucket, offset)].append(row)
    starts = [datetime.fromisoformat(b["start"]) for b in series]
    assert starts == sorted(starts)
    assert [b["end"] for b in series[:-1]] == [b["start"] for b in series[1:]]
    for found in series:
        start = datetime.fromisoformat(found["start"])
        local = start.replace(tzinfo=None) + shift
        assert local == _local_start(start, bucket, offset)  # on a local boundary
        members = by_start.get(local, [])
        assert found["count"] == len(members)
        assert found["totals"] == {"totalCostUsd": _totals(members)["totalCostUsd"]}
        assert found["duration"]["count"] == _durations(members)["count"]
        assert found["duration"]["p50Seconds"] == _durations(members)["p50Seconds"]
    assert any(b["count"] == 0 for b in series) == (bucket == "HOUR")  # empty ones listed


async def test_from_and_to_choose_the_buckets(
    gql: GraphQLClient, rows: list[dict[str, Any]]
) -> None:
    query = (
        "query ($from: DateTime, $to: DateTime) { sessionStats { timeSeries(bucket: DAY, "
        "from: $from, to: $to) { start count } } }"
    )
    data = await gql(query, {"from": "2026-03-31T12:00:00Z", "to": "2026-04-02T00:00:00Z"})
    assert [b["start"][:10] for b in data["sessionStats"]["timeSeries"]] == [
        "2026-03-31",
        "2026-04-01",
        "2026-04-02",
    ]

    data = await gql(query, {"from": "2026-04-02T00:00:00Z", "to": "2026-04-01T00:00:00Z"})
    assert data["sessionStats"]["timeSeries"] == []

    body = await gql.raw(query, {"from": "2020-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"})
    [error] = body["errors"]
    assert error["extensions"] == {
        "code": "BAD_USER_INPUT",
        "argumentName": "bucket",
        "requested": 2193,
        "maximum": 1000,
    }


@pytest.mark.parametrize("offset", [7, 855, -900])
async def test_an_offset_off_the_quarter_hours_or_the_range_is_refused(
    gql: GraphQLClient, rows: list[dict[str, Any]], offset: int
) -> None:
    body = await gql.raw(
        f"{{ sessionStats {{ timeSeries(bucket: DAY, utcOffsetMinutes: {offset}) {{ count }} }} }}"
    )

    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_nothing_to_aggregate_gives_zeros_and_empty_lists(gql: GraphQLClient) -> None:
    data = await gql(
        f"{{ sessionStats {{ count {TOTALS} {DURATION} byStatus {{ count }} costByModel "
        "{ model } groupBy(by: REPO) { key } timeSeries(bucket: DAY) { start } } }"
    )

    found = data["sessionStats"]
    assert found["count"] == 0
    assert found["totals"]["totalCostUsd"] == "0"
    assert found["duration"] == dict.fromkeys(found["duration"], None) | {"count": 0}
    assert [s["count"] for s in found["byStatus"]] == [0] * 5
    assert found["costByModel"] == found["groupBy"] == found["timeSeries"] == []


@pytest.mark.parametrize("sessions", [1, 20, 200])
async def test_statements_per_field_do_not_grow_with_the_sessions(
    gql: GraphQLClient, engine: AsyncEngine, sessions: int
) -> None:
    for n in range(sessions):
        await insert_session(
            engine,
            repos=[f"o/r{n % 7}"],
            agent_model=f"m{n % 5}",
            duration_seconds=float(n),
            started_at=T + timedelta(hours=n),
            cost_by_model={f"m{n % 5}": "1.5"},
        )

    with statements(engine) as seen:
        await gql(
            f"{{ sessionStats {{ count {TOTALS} {DURATION} byStatus {{ count }} costByModel "
            f"{{ model }} groupBy(by: REPO) {{ key {DURATION} }} timeSeries(bucket: HOUR) "
            f"{{ count byStatus {{ count }} costByModel {{ model }} {DURATION} }} "
            "tools { toolName } } }"
        )

    # overall: sums (from the rollups), durations with their percentiles, statuses,
    # models; groups: sums, durations with percentiles; series: its range, sums,
    # durations with percentiles, statuses, models; tools
    assert len(seen) == 12


@pytest.mark.parametrize(
    ("selection", "cost"),
    [
        ("count", 1 + 100),
        ("count byStatus { count } costByModel { model }", 1 + 3 * 100),
        ("groupBy(by: REPO, first: 150) { key }", 1 + 150),
        ("groupBy(by: REPO, first: 3) { key }", 1 + 100),
        (
            'timeSeries(bucket: DAY, from: "2026-01-01T00:00:00Z", to: "2026-06-30T00:00:00Z") '
            "{ count }",
            1 + 181,
        ),
        ("timeSeries(bucket: HOUR) { count }", 1 + 1000),
        (
            'timeSeries(bucket: MONTH, from: "2026-03-01T00:00:00Z", to: "2026-01-01T00:00:00Z") '
            "{ count }",
            1 + 100,
        ),
    ],
)
async def test_each_aggregate_costs_at_least_a_hundred_and_lists_their_length(
    gql: GraphQLClient, selection: str, cost: int
) -> None:
    body = await gql.raw(f"{{ sessionStats {{ {selection} }} }}")

    assert body["extensions"]["cost"]["requestedNodes"] == cost


async def test_tools_add_up_the_sessions_tool_usage_most_calls_first(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    usage = {
        "s-1": [("Bash", 3, 1, 1.5, 2), ("Edit", 2, 0, 0.0, 0), ("Read", 1, 1, 0.25, 1)],
        "s-2": [("Bash", 1, 0, 0.1, 1), ("Read", 2, 0, 0.0, 0), ("Édit", 3, 3, 9.0, 3)],
    }
    for session_id, tools in usage.items():
        await insert_session(engine, id=session_id)
        async with engine.begin() as conn:
            await conn.execute(
                session_tools.insert(),
                [
                    {
                        "session_id": session_id,
                        "tool_name": name,
                        "calls": calls,
                        "failures": failures,
                        "total_duration_seconds": seconds,
                        "duration_count": timed,
                    }
                    for name, calls, failures, seconds, timed in tools
                ],
            )

    data = await gql(
        "{ sessionStats { tools { toolName calls failures totalDurationSeconds "
        "avgDurationSeconds } two: tools(first: 2) { toolName } } }"
    )

    assert data["sessionStats"]["tools"] == [
        {
            "toolName": "Bash",
            "calls": 4,
            "failures": 1,
            "totalDurationSeconds": 1.6,
            "avgDurationSeconds": round(1.6 / 3, 6),
        },
        {
            "toolName": "Read",
            "calls": 3,
            "failures": 1,
            "totalDurationSeconds": 0.25,
            "avgDurationSeconds": 0.25,
        },
        {
            "toolName": "Édit",
            "calls": 3,
            "failures": 3,
            "totalDurationSeconds": 9.0,
            "avgDurationSeconds": 3.0,
        },
        {
            "toolName": "Edit",
            "calls": 2,
            "failures": 0,
            "totalDurationSeconds": None,
            "avgDurationSeconds": None,
        },
    ]  # ties by name byte-wise: "Read" < "Édit"
    assert data["sessionStats"]["two"] == [{"toolName": "Bash"}, {"toolName": "Read"}]
    body = await gql.raw("{ sessionStats { tools(first: 101) { toolName } } }")
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize(
    "where",
    [
        "{status: [COMPLETED, FAILED]}",
        '{totalCostUsd: {gte: "0.5"}, not: {agentModel: {isNull: true}}}',
        '{or: [{workflowId: {eq: "wf-1"}}, {repo: {prefix: "x/"}}]}',
        "{durationSeconds: {lt: 100}}",
        "{or: []}",
    ],
)
async def test_the_filter_chooses_the_sessions_as_it_does_for_a_list(
    gql: GraphQLClient, rows: list[dict[str, Any]], where: str
) -> None:
    data = await gql(
        f"{{ sessions(filter: {where}, first: 200) {{ totalCount nodes {{ id }} }} "
        f"sessionStats(filter: {where}) {{ count {TOTALS} groupBy(by: STATUS) {{ key count }} "
        "timeSeries(bucket: MONTH) { count } } }"
    )

    ids = {node["id"] for node in data["sessions"]["nodes"]}
    chosen = [row for row in rows if row["id"] in ids]
    found = data["sessionStats"]
    assert found["count"] == data["sessions"]["totalCount"] == len(chosen)
    assert found["totals"] == _totals(chosen)
    assert sum(g["count"] for g in found["groupBy"]) == len(chosen)
    dated = [row for row in chosen if row["started_at"] is not None]
    assert sum(b["count"] for b in found["timeSeries"]) == len(dated)


async def test_a_filter_beyond_its_limits_is_refused_at_its_path(gql: GraphQLClient) -> None:
    body = await gql.raw('{ sessionStats(filter: {errorMessage: {contains: ""}}) { count } }')

    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["path"] == ["sessionStats"]
    assert body["data"] == {"sessionStats": None}
