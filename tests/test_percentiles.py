"""Exact duration percentiles (SPEC §5) against a linear interpolation computed here, as
numpy's default ``percentile`` interpolates, on SQLite and PostgreSQL: overall, per group
and per time bucket, at the sizes where a rank is easiest to miss by one."""

from __future__ import annotations

import math
import random
import statistics
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import GraphQLClient, insert_sessions, session_row

PERCENTILES = {"p50Seconds": 50, "p90Seconds": 90, "p95Seconds": 95, "p99Seconds": 99}
DURATION = "duration { count " + " ".join(PERCENTILES) + " }"
#: Sizes whose ranks p(n-1)/100 are whole for every p (1, 101), for none, or for some.
SIZES = [1, 2, 3, 4, 5, 20, 21, 101]
#: Not counted: no number, or not a number below 10^9 seconds in size.
UNCOUNTED = [None, math.nan, math.inf, -math.inf, 1e9, -1e9, 2e9]
DAY = datetime(2026, 3, 2, tzinfo=UTC)


def _counted(duration: float | None) -> bool:
    return duration is not None and math.isfinite(duration) and abs(duration) < 1e9


def _linear(values: list[float], p: int) -> float:
    """numpy.percentile(values, p) (method "linear"), the rank in exact arithmetic."""
    ordered = sorted(values)
    position = Fraction(p * (len(ordered) - 1), 100)
    low = math.floor(position)
    lo, hi = ordered[low], ordered[min(low + 1, len(ordered) - 1)]
    return round(lo + float(position - low) * (hi - lo), 6)


def _expected(durations: list[float | None]) -> dict[str, Any]:
    values = [d for d in durations if d is not None and _counted(d)]
    if not values:
        return {"count": 0} | dict.fromkeys(PERCENTILES)
    found: dict[str, Any] = {"count": len(values)}
    for name, p in PERCENTILES.items():
        found[name] = _linear(values, p)
        # the same percentile by a second method: R's type 7 is numpy's linear
        other = values[0] if len(values) == 1 else None
        if other is None:
            other = statistics.quantiles(values, n=100, method="inclusive")[p - 1]
        assert found[name] == pytest.approx(other, rel=1e-9, abs=1e-6)
    return found


def _spread(n: int, rng: random.Random) -> list[float]:
    """n distinct durations at least a second apart (a rank off by one shows), shuffled."""
    values = [round(1.5 * k + rng.random() / 2, 3) for k in range(n)]
    rng.shuffle(values)
    return values


def _rows(durations: list[float | None], **fields: Any) -> list[dict[str, Any]]:
    return [session_row(duration_seconds=d, **fields) for d in durations]


@pytest.mark.parametrize("n", SIZES)
async def test_overall_percentiles_interpolate_between_the_ranks_that_bound_them(
    gql: GraphQLClient, engine: AsyncEngine, n: int
) -> None:
    durations: list[float | None] = [*_spread(n, random.Random(n)), *UNCOUNTED]
    await insert_sessions(engine, *_rows(durations))

    data = await gql(f"{{ sessionStats {{ count {DURATION} }} }}")

    assert data["sessionStats"]["count"] == len(durations)
    assert data["sessionStats"]["duration"] == _expected(durations)


@pytest.mark.parametrize(
    "durations",
    [
        pytest.param([7.0] * 5, id="all-equal"),
        pytest.param([1.0, 2.0, 2.0, 2.0, 9.0], id="ties-in-the-middle"),
        pytest.param([0.0, 0.0, 0.0, 100.0], id="ties-below"),
        pytest.param([-3.5, 0.0, 0.25, 999_999_999.5], id="negative-zero-and-the-largest"),
        pytest.param([0.1, 0.2, 0.30000000000000004, 1e-7, 123456.789012], id="awkward-doubles"),
    ],
)
async def test_ties_and_awkward_values_interpolate_exactly(
    gql: GraphQLClient, engine: AsyncEngine, durations: list[float]
) -> None:
    await insert_sessions(engine, *_rows([*durations, *UNCOUNTED]))

    data = await gql(f"{{ sessionStats {{ {DURATION} }} }}")

    assert data["sessionStats"]["duration"] == _expected(list(durations))


async def test_sessions_without_a_counted_duration_have_no_percentiles(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    await insert_sessions(engine, *_rows(UNCOUNTED))

    data = await gql(f"{{ sessionStats {{ count {DURATION} }} }}")

    assert data["sessionStats"] == {"count": len(UNCOUNTED), "duration": _expected([])}


@pytest.mark.parametrize("seed", range(4))
async def test_random_durations_with_ties_match_the_interpolation(
    gql: GraphQLClient, engine: AsyncEngine, seed: int
) -> None:
    rng = random.Random(seed)
    pool = [round(rng.uniform(-10, 10_000), rng.choice([0, 2, 6])) for _ in range(12)]
    durations = [rng.choice([*pool, *UNCOUNTED]) for _ in range(rng.randint(1, 150))]
    await insert_sessions(engine, *_rows(durations))

    data = await gql(f"{{ sessionStats {{ {DURATION} }} }}")

    assert data["sessionStats"]["duration"] == _expected(durations)


def _groups() -> dict[str | None, list[float | None]]:
    rng = random.Random(7)
    groups: dict[str | None, list[float | None]] = {
        f"wf-{n:03}": [*_spread(n, rng), *UNCOUNTED[: n % 4]] for n in SIZES
    }
    groups[None] = [*_spread(150, rng), None]  # the largest group: listed first
    groups["wf-uncounted"] = list(UNCOUNTED)
    return groups


@pytest.mark.parametrize("first", [200, 3])
async def test_each_group_has_the_percentiles_of_its_own_durations(
    gql: GraphQLClient, engine: AsyncEngine, first: int
) -> None:
    groups = _groups()
    await insert_sessions(
        engine, *(row for key, values in groups.items() for row in _rows(values, workflow_id=key))
    )

    data = await gql(
        f"{{ sessionStats {{ groupBy(by: WORKFLOW, first: {first}) {{ key count {DURATION} }} }} }}"
    )

    found = data["sessionStats"]["groupBy"]
    largest = sorted(groups, key=lambda k: (-len(groups[k]), k is None, k or ""))[:first]
    assert [group["key"] for group in found] == largest
    for group in found:
        assert group["count"] == len(groups[group["key"]])
        assert group["duration"] == _expected(groups[group["key"]]), group["key"]


async def test_each_time_bucket_has_the_percentiles_of_its_own_durations(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given days of 1, 2, 3, ... sessions, one day without any, one without a counted one
    rng = random.Random(3)
    days: list[list[float | None]] = [_spread(n, rng) for n in SIZES]
    days[2] = []
    days.append(list(UNCOUNTED))
    await insert_sessions(
        engine,
        *(
            row
            for day, values in enumerate(days)
            for k, value in enumerate(values)
            for row in _rows([value], started_at=DAY + timedelta(days=day, minutes=k))
        ),
    )

    data = await gql(
        f"{{ sessionStats {{ timeSeries(bucket: DAY) {{ start count {DURATION} }} }} }}"
    )

    series = data["sessionStats"]["timeSeries"]
    assert [b["start"] for b in series] == [
        (DAY + timedelta(days=day)).isoformat() for day in range(len(days))
    ]
    for bucket, values in zip(series, days, strict=True):
        assert bucket["count"] == len(values)
        assert bucket["duration"] == _expected(values), bucket["start"]
