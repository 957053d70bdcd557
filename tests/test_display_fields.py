"""Session display fields through the API follow SPEC §1.6; scalars serialize as SPEC §2 says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import GraphQLClient, insert_operations, insert_session, operation_row

DASH = "\u2014"

TOKEN_FIELDS = {
    "inputTokens": "input_tokens",
    "outputTokens": "output_tokens",
    "cacheCreationTokens": "cache_creation_tokens",
    "cacheReadTokens": "cache_read_tokens",
    "totalTokens": "total_tokens",
}


async def read_session(gql: GraphQLClient, session_id: str, fields: str) -> dict[str, Any]:
    data = await gql(
        f"query ($id: String!) {{ session(id: $id) {{ {fields} }} }}", {"id": session_id}
    )
    session: dict[str, Any] = data["session"]
    return session


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        pytest.param(0, "0", id="0"),
        pytest.param(742, "742", id="742"),
        pytest.param(999, "999", id="999"),
        pytest.param(1000, "1.0k", id="1000"),
        pytest.param(1237, "1.2k", id="1237"),
        pytest.param(12500, "12.5k", id="12500"),
        pytest.param(999999, "1000.0k", id="999999"),
        pytest.param(1000000, "1.0M", id="1000000"),
        pytest.param(1500000, "1.5M", id="1500000"),
        pytest.param(-5, "-5", id="negative"),
        pytest.param(-1500, "-1500", id="negative-below-1000-unscaled"),
    ],
)
async def test_token_display_fields(
    gql: GraphQLClient, engine: AsyncEngine, n: int, expected: str
) -> None:
    # given: every token column holds n
    session = await insert_session(engine, **dict.fromkeys(TOKEN_FIELDS.values(), n))

    # when
    fields = " ".join(f"{name} {name}Display" for name in TOKEN_FIELDS)
    data = await read_session(gql, session["id"], fields)

    # then
    assert data == {
        **dict.fromkeys(TOKEN_FIELDS, n),
        **dict.fromkeys((f"{name}Display" for name in TOKEN_FIELDS), expected),
    }


async def test_each_token_display_field_reads_its_own_column(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    session = await insert_session(
        engine,
        input_tokens=742,
        output_tokens=1237,
        cache_creation_tokens=12500,
        cache_read_tokens=1500000,
        total_tokens=999999,
    )

    # when
    data = await read_session(
        gql,
        session["id"],
        "inputTokensDisplay outputTokensDisplay cacheCreationTokensDisplay "
        "cacheReadTokensDisplay totalTokensDisplay",
    )

    # then
    assert data == {
        "inputTokensDisplay": "742",
        "outputTokensDisplay": "1.2k",
        "cacheCreationTokensDisplay": "12.5k",
        "cacheReadTokensDisplay": "1.5M",
        "totalTokensDisplay": "1000.0k",
    }


@pytest.mark.parametrize(
    ("usd", "expected"),
    [
        pytest.param("0", "$0.00", id="zero"),
        pytest.param("0.001", "<$0.01", id="0.001"),
        pytest.param("0.0049", "<$0.01", id="0.0049"),
        pytest.param("0.01", "$0.01", id="0.01"),
        pytest.param("0.0438", "$0.04", id="0.0438"),
        pytest.param("1.234", "$1.23", id="1.234"),
        pytest.param("12.5", "$12.50", id="12.5"),
        pytest.param("999.99", "$999.99", id="999.99"),
        pytest.param("1000", "$1.0k", id="1000"),
        pytest.param("1234.5", "$1.2k", id="1234.5"),
        pytest.param("-0.05", "-$0.05", id="-0.05"),
        pytest.param("-0.001", "-<$0.01", id="-0.001"),
    ],
)
async def test_total_cost_display(
    gql: GraphQLClient, engine: AsyncEngine, usd: str, expected: str
) -> None:
    # given
    session = await insert_session(engine, total_cost_usd=Decimal(usd))

    # when
    data = await read_session(gql, session["id"], "totalCostUsd totalCostDisplay")

    # then
    assert data == {"totalCostUsd": usd, "totalCostDisplay": expected}


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        pytest.param(None, DASH, id="null"),
        pytest.param(0.0, "<1s", id="0"),
        pytest.param(0.4, "<1s", id="0.4"),
        pytest.param(-3.0, "<1s", id="negative"),
        pytest.param(1.9, "1s", id="1.9"),
        pytest.param(59.99, "59s", id="59.99"),
        pytest.param(60.0, "1m", id="60"),
        pytest.param(61.0, "1m 1s", id="61"),
        pytest.param(134.2, "2m 14s", id="134.2"),
        pytest.param(3600.0, "1h", id="3600"),
        pytest.param(3659.0, "1h", id="3659"),
        pytest.param(3725.0, "1h 2m", id="3725"),
        pytest.param(90061.0, "25h 1m", id="90061"),
    ],
)
async def test_duration_display(
    gql: GraphQLClient, engine: AsyncEngine, seconds: float | None, expected: str
) -> None:
    # given
    session = await insert_session(engine, duration_seconds=seconds)

    # when
    data = await read_session(gql, session["id"], "durationSeconds durationDisplay")

    # then
    assert data == {"durationSeconds": seconds, "durationDisplay": expected}


@pytest.mark.parametrize(
    ("phase_id", "expected"),
    [
        pytest.param(None, None, id="null"),
        pytest.param("detect", "Detect", id="detect"),
        pytest.param("research_phase", "Research Phase", id="research_phase"),
        pytest.param("fix-bug", "Fix Bug", id="fix-bug"),
        pytest.param("ALREADY_TITLED", "Already Titled", id="ALREADY_TITLED"),
        pytest.param("phase-1", "Phase 1", id="phase-1"),
        pytest.param("39574120-df6e-4043-a2aa-58be12c9ae51", "Phase 39574120", id="uuid-lowercase"),
        pytest.param(
            "3957ABCD-DF6E-4043-A2AA-58BE12C9AE51", "Phase 3957ABCD", id="uuid-as-written"
        ),
        pytest.param("  fix__the--bug  ", "Fix The Bug", id="stripped-single-spaces"),
        pytest.param("", "", id="empty"),
        pytest.param("   ", "", id="blank-stripped-to-empty"),
        pytest.param("_-_", "_-_", id="only-separators-unchanged"),
    ],
)
async def test_phase_display(
    gql: GraphQLClient, engine: AsyncEngine, phase_id: str | None, expected: str | None
) -> None:
    # given
    session = await insert_session(engine, phase_id=phase_id)

    # when
    data = await read_session(gql, session["id"], "phaseId phaseDisplay")

    # then
    assert data == {"phaseId": phase_id, "phaseDisplay": expected}


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        pytest.param(None, None, id="null"),
        pytest.param("claude-sonnet-4-6", "Sonnet 4.6", id="claude-sonnet-4-6"),
        pytest.param("claude-opus-4-7", "Opus 4.7", id="claude-opus-4-7"),
        pytest.param("claude-sonnet-4", "Sonnet 4", id="claude-sonnet-4"),
        pytest.param(
            "claude-opus-4-20250514", "claude-opus-4-20250514", id="claude-opus-4-20250514"
        ),
        pytest.param(
            "claude-3-5-sonnet-20241022",
            "claude-3-5-sonnet-20241022",
            id="claude-3-5-sonnet-20241022",
        ),
        pytest.param("gpt-4o", "gpt-4o", id="gpt-4o"),
        pytest.param("", "", id="empty"),
        pytest.param("  claude-haiku-4-5  ", "Haiku 4.5", id="stripped"),
    ],
)
async def test_agent_model_display(
    gql: GraphQLClient, engine: AsyncEngine, model: str | None, expected: str | None
) -> None:
    # given
    session = await insert_session(engine, agent_model=model)

    # when
    data = await read_session(gql, session["id"], "agentModel agentModelDisplay")

    # then
    assert data == {"agentModel": model, "agentModelDisplay": expected}


@pytest.mark.parametrize(
    ("repos", "expected"),
    [
        pytest.param([], None, id="empty"),
        pytest.param(["acme/foo"], "foo", id="one"),
        pytest.param(["singletoken"], "singletoken", id="no-owner"),
        pytest.param(["acme/foo/bar"], "foo/bar", id="after-first-slash"),
        pytest.param(["acme/foo", "acme/bar"], "foo +1", id="two"),
        pytest.param(["  acme/foo  ", "", "acme/bar"], "foo +1", id="stripped-blanks-dropped"),
        pytest.param(["", "   "], None, id="only-blanks"),
        pytest.param(["acme/"], "acme/", id="empty-name-keeps-entry"),
        pytest.param(["a/x", "b/y", "c/z"], "x +2", id="three"),
    ],
)
async def test_repos_display(
    gql: GraphQLClient, engine: AsyncEngine, repos: list[str], expected: str | None
) -> None:
    # given
    session = await insert_session(engine, repos=repos)

    # when
    data = await read_session(gql, session["id"], "repos reposDisplay")

    # then
    assert data == {"repos": repos, "reposDisplay": expected}


async def test_display_fields_of_a_bare_session(gql: GraphQLClient, engine: AsyncEngine) -> None:
    # given: no phase, model, repos, duration; zero tokens and cost
    session = await insert_session(
        engine, phase_id=None, agent_model=None, repos=[], duration_seconds=None
    )

    # when
    data = await read_session(
        gql,
        session["id"],
        "phaseDisplay agentModelDisplay reposDisplay durationDisplay totalCostDisplay "
        "totalTokensDisplay",
    )

    # then
    assert data == {
        "phaseDisplay": None,
        "agentModelDisplay": None,
        "reposDisplay": None,
        "durationDisplay": DASH,
        "totalCostDisplay": "$0.00",
        "totalTokensDisplay": "0",
    }


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        pytest.param(Decimal("0.0438"), "0.0438", id="0.0438"),
        pytest.param(Decimal("12.50"), "12.5", id="trailing-zero-dropped"),
        pytest.param(Decimal("1000"), "1000", id="1000-not-exponent"),
        pytest.param(Decimal("1E+3"), "1000", id="exponent-input-plain-output"),
        pytest.param(Decimal("0"), "0", id="0"),
        pytest.param(Decimal("0.00"), "0", id="0.00"),
        pytest.param(Decimal("0.0000001"), "0.0000001", id="tiny-not-exponent"),
        pytest.param(Decimal("123456.789"), "123456.789", id="large"),
        pytest.param(Decimal("-0.05"), "-0.05", id="negative"),
    ],
)
async def test_total_cost_usd_is_a_plain_decimal_string(
    gql: GraphQLClient, engine: AsyncEngine, stored: Decimal, expected: str
) -> None:
    # given
    session = await insert_session(engine, total_cost_usd=stored)

    # when
    data = await read_session(gql, session["id"], "totalCostUsd")

    # then
    assert data == {"totalCostUsd": expected}


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        pytest.param(
            datetime(2026, 4, 18, 10, 0, tzinfo=timezone(timedelta(hours=2))),
            "2026-04-18T08:00:00+00:00",
            id="offset-converted-to-utc",
        ),
        pytest.param(
            datetime(2026, 4, 18, 8, 0, 0, 123456, tzinfo=UTC),
            "2026-04-18T08:00:00.123456+00:00",
            id="microseconds-kept",
        ),
        pytest.param(
            datetime(2026, 4, 17, 23, 30, 0, 5, tzinfo=timezone(timedelta(hours=-5))),
            "2026-04-18T04:30:00.000005+00:00",
            id="negative-offset-crosses-midnight",
        ),
        pytest.param(
            datetime(2026, 4, 18, 8, 0),
            "2026-04-18T08:00:00+00:00",
            id="naive-taken-as-utc",
        ),
    ],
)
async def test_datetimes_are_iso_8601_in_utc_with_offset(
    gql: GraphQLClient, engine: AsyncEngine, stored: datetime, expected: str
) -> None:
    # given
    session = await insert_session(engine, started_at=stored, completed_at=stored)
    await insert_operations(engine, operation_row(session["id"], timestamp=stored))

    # when
    data = await read_session(
        gql, session["id"], "startedAt completedAt operations { nodes { timestamp } }"
    )

    # then
    assert data == {
        "startedAt": expected,
        "completedAt": expected,
        "operations": {"nodes": [{"timestamp": expected}]},
    }


async def test_null_datetimes_are_null(gql: GraphQLClient, engine: AsyncEngine) -> None:
    # given
    session = await insert_session(engine, started_at=None, completed_at=None)

    # when
    data = await read_session(gql, session["id"], "startedAt completedAt")

    # then
    assert data == {"startedAt": None, "completedAt": None}
