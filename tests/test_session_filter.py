"""`sessions(filter: SessionFilter)`: every field, the NULL and empty-list rules, and/or/not,
and the limits (SPEC 5). Each test runs on SQLite and PostgreSQL, which must agree."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from sessiongraph.db import filtering
from sessiongraph.db.columns import double_bound, on_money_grid
from sessiongraph.db.tables import operations
from sessiongraph.graphql.session_filter import OperationMatch, StringMatch, operation_where
from tests.helpers import (
    T0,
    GraphQLClient,
    cost,
    insert_operations,
    insert_sessions,
    operation_row,
    session_row,
)

HOUR = timedelta(hours=1)

QUERY = """query ($filter: SessionFilter, $first: Int) {
  sessions(filter: $filter, first: $first) { totalCount nodes { id } }
}"""

#: A filter and the ids of the sessions it must match, in any order.
Case = tuple[dict[str, Any], set[str]]


async def matching(gql: GraphQLClient, filter: dict[str, Any] | None) -> set[str]:
    """The ids of every session ``filter`` matches; the page and the count must agree."""
    data = (await gql(QUERY, {"filter": filter, "first": 200}))["sessions"]
    ids = {node["id"] for node in data["nodes"]}
    assert data["totalCount"] == len(ids) == len(data["nodes"]), (filter, data)
    return ids


async def check(gql: GraphQLClient, cases: list[Case]) -> None:
    """Runs every case, then fails listing each one that matched other sessions."""
    wrong = []
    for filter, expected in cases:
        got = await matching(gql, filter)
        if got != expected:
            wrong.append(f"{json.dumps(filter)}: expected {sorted(expected)}, got {sorted(got)}")
    assert not wrong, "\n".join(wrong)


def refused(body: dict[str, Any], field: str) -> str:
    """The message of the single BAD_USER_INPUT error of ``body``, at ``field``."""
    assert body["data"] is None, body
    [error] = body["errors"]
    assert error["extensions"] == {
        "code": "BAD_USER_INPUT",
        "argumentName": "filter",
        "field": field,
    }, error
    assert error["path"] == ["sessions"], error
    message: str = error["message"]
    return message


#: Counters kept on the session as operations are recorded.
COUNTER_FIELDS = [
    ("operationCount", "operation_count"),
    ("toolCallCount", "tool_call_count"),
    ("failedOperationCount", "failed_operation_count"),
    ("subagentCount", "subagent_count"),
    ("commitCount", "commit_count"),
]


# --- StringMatch on the session's string columns -----------------------------------------------

STRING_VALUES = {
    "v-plain": "alpha",
    "v-upper": "Alpha",
    "v-percent": "al%pha",
    "v-underscore": "al_pha",
    "v-backslash": "al\\pha",
    "v-other": "beta",
    "v-accent": "élan",
}
STRING_COLUMNS = [
    ("workflowId", "workflow_id"),
    ("executionId", "execution_id"),
    ("phaseId", "phase_id"),
    ("milestoneId", "milestone_id"),
    ("agentProvider", "agent_provider"),
    ("agentModel", "agent_model"),
]


def _everything_but(*ids: str) -> set[str]:
    return {*STRING_VALUES, "v-null"} - set(ids)


@pytest.mark.parametrize(("field", "column"), STRING_COLUMNS)
async def test_string_match_on_each_column(
    gql: GraphQLClient, engine: AsyncEngine, field: str, column: str
) -> None:
    # given one session per value, and one without any
    await insert_sessions(
        engine,
        *(session_row(id=id, **{column: value}) for id, value in STRING_VALUES.items()),
        session_row(id="v-null", **{column: None}),
    )
    like = {"v-plain", "v-percent", "v-underscore", "v-backslash"}

    # when / then
    await check(
        gql,
        [
            ({field: {"eq": "alpha"}}, {"v-plain"}),
            ({field: {"eq": "ALPHA"}}, set()),
            ({field: {"in": ["alpha", "beta", "nope"]}}, {"v-plain", "v-other"}),
            ({field: {"in": ["Alpha"]}}, {"v-upper"}),
            ({field: {"in": []}}, set()),
            ({field: {"prefix": "al"}}, like),
            ({field: {"prefix": "Al"}}, {"v-upper"}),
            ({field: {"prefix": "al%"}}, {"v-percent"}),
            ({field: {"prefix": "al_"}}, {"v-underscore"}),
            ({field: {"prefix": "al\\"}}, {"v-backslash"}),
            ({field: {"prefix": "é"}}, {"v-accent"}),
            ({field: {"prefix": "E"}}, set()),
            ({field: {"prefix": ""}}, _everything_but("v-null")),
            ({field: {"prefix": "alpha-and-more"}}, set()),
            ({field: {"isNull": True}}, {"v-null"}),
            ({field: {"isNull": False}}, _everything_but("v-null")),
            ({field: {"eq": "alpha", "isNull": True}}, set()),
            ({field: {"prefix": "al", "in": ["alpha", "beta"]}}, {"v-plain"}),
            ({field: {"eq": "alpha", "in": ["beta"]}}, set()),
            ({field: {"in": [], "isNull": True}}, set()),
            ({field: {}}, _everything_but()),
            ({field: None}, _everything_but()),
            ({field: {"eq": None, "prefix": None}}, _everything_but()),
            # two-valued not: the session without a value is not "alpha" either
            ({"not": {field: {"eq": "alpha"}}}, _everything_but("v-plain")),
            ({"not": {field: {"in": []}}}, _everything_but()),
            ({"not": {field: {"isNull": False}}}, {"v-null"}),
        ],
    )


async def test_string_match_on_id(gql: GraphQLClient, engine: AsyncEngine) -> None:
    await insert_sessions(engine, *(session_row(id=value) for value in STRING_VALUES.values()))

    await check(
        gql,
        [
            ({"id": {"eq": "al_pha"}}, {"al_pha"}),
            ({"id": {"prefix": "al%"}}, {"al%pha"}),
            ({"id": {"prefix": "al\\"}}, {"al\\pha"}),
            ({"id": {"in": ["beta", "élan"]}}, {"beta", "élan"}),
            ({"id": {"isNull": True}}, set()),
            ({"id": {"isNull": False}}, set(STRING_VALUES.values())),
        ],
    )


# --- status --------------------------------------------------------------------------------------


async def test_status_any_of(gql: GraphQLClient, engine: AsyncEngine) -> None:
    await insert_sessions(
        engine,
        session_row(id="run", status="running"),
        session_row(id="ok", status="completed"),
        session_row(id="bad", status="failed"),
        session_row(id="pen", status="pending", started_at=None),
    )

    await check(
        gql,
        [
            ({"status": ["RUNNING"]}, {"run"}),
            ({"status": ["FAILED", "PENDING", "FAILED"]}, {"bad", "pen"}),
            ({"status": ["CANCELLED"]}, set()),
            ({"status": []}, set()),
            ({"not": {"status": []}}, {"run", "ok", "bad", "pen"}),
            ({"not": {"status": ["RUNNING", "PENDING"]}}, {"ok", "bad"}),
        ],
    )


async def test_unknown_status_is_refused_by_the_enum(gql: GraphQLClient) -> None:
    body = await gql.raw(QUERY, {"filter": {"status": ["SLEEPING"]}})

    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "SLEEPING" in error["message"]


# --- repo ----------------------------------------------------------------------------------------


async def test_repo_matches_normalized_entries(gql: GraphQLClient, engine: AsyncEngine) -> None:
    # given repos with padding, blanks, several entries, and values of other shapes
    await insert_sessions(
        engine,
        session_row(id="api", repos=["acme/api"]),
        session_row(id="padded", repos=["  acme/web\t", "", "   "]),
        session_row(id="blanks", repos=["", " \u3000 "]),
        session_row(id="none", repos=[]),
        session_row(id="two", repos=["octo/x", "acme/api"]),
        session_row(id="deeper", repos=["acme/api/sub"]),
        session_row(id="mixed", repos=[5, None, "globex/a"]),
        session_row(id="object", repos={"first": "acme/api"}),
    )
    everyone = {"api", "padded", "blanks", "none", "two", "deeper", "mixed", "object"}

    await check(
        gql,
        [
            ({"repo": {"eq": "acme/web"}}, {"padded"}),
            ({"repo": {"eq": "  acme/web\t"}}, set()),
            ({"repo": {"eq": "acme/api"}}, {"api", "two"}),
            ({"repo": {"in": ["acme/api", "globex/a"]}}, {"api", "two", "mixed"}),
            ({"repo": {"in": []}}, set()),
            ({"repo": {"prefix": "acme/"}}, {"api", "padded", "two", "deeper"}),
            ({"repo": {"prefix": "ACME/"}}, set()),
            # all conditions of one match hold for the same entry
            ({"repo": {"prefix": "octo/", "eq": "acme/api"}}, set()),
            ({"repo": {"prefix": "acme/", "eq": "acme/api"}}, {"api", "two"}),
            ({"repo": {"prefix": "acme/", "in": ["octo/x"]}}, set()),
            ({"repo": {"isNull": True}}, {"blanks", "none", "object"}),
            ({"repo": {"isNull": False}}, everyone - {"blanks", "none", "object"}),
            ({"repo": {"isNull": True, "eq": "acme/api"}}, set()),
            ({"repo": {"isNull": False, "eq": "acme/api"}}, {"api", "two"}),
            ({"not": {"repo": {"eq": "acme/api"}}}, everyone - {"api", "two"}),
            ({"or": [{"repo": {"prefix": "octo/"}}, {"repo": {"eq": "acme/api"}}]}, {"api", "two"}),
            ({"and": [{"repo": {"prefix": "octo/"}}, {"repo": {"eq": "acme/api"}}]}, {"two"}),
        ],
    )


# --- time ranges ---------------------------------------------------------------------------------


async def test_datetime_ranges(gql: GraphQLClient, engine: AsyncEngine) -> None:
    await insert_sessions(
        engine,
        session_row(id="early", started_at=T0 - 2 * HOUR, completed_at=T0 - HOUR),
        session_row(id="mid", started_at=T0 - HOUR, completed_at=None),
        session_row(id="late", started_at=T0, completed_at=T0 + HOUR),
        session_row(id="undated", started_at=None, completed_at=None),
    )
    at = (T0 - HOUR).isoformat()
    everyone = {"early", "mid", "late", "undated"}

    await check(
        gql,
        [
            ({"startedAt": {"gt": at}}, {"late"}),
            ({"startedAt": {"gte": at}}, {"mid", "late"}),
            ({"startedAt": {"lt": at}}, {"early"}),
            ({"startedAt": {"lte": at}}, {"early", "mid"}),
            ({"startedAt": {"gt": at, "gte": at}}, {"late"}),
            ({"startedAt": {"gte": at, "lte": at}}, {"mid"}),
            ({"startedAt": {"gt": T0.isoformat(), "lt": at}}, set()),
            # an offset other than UTC, and a naive time (taken as UTC)
            ({"startedAt": {"gte": "2026-04-18T08:00:00+01:00"}}, {"mid", "late"}),
            ({"startedAt": {"gte": "2026-04-18T07:00:00"}}, {"mid", "late"}),
            ({"startedAt": {}}, everyone),
            ({"not": {"startedAt": {"gt": at}}}, {"early", "mid", "undated"}),
            ({"completedAt": {"gte": T0.isoformat()}}, {"late"}),
            ({"completedAt": {"lt": T0.isoformat()}}, {"early"}),
            ({"not": {"completedAt": {"lt": T0.isoformat()}}}, {"mid", "late", "undated"}),
        ],
    )


async def test_updated_at_range(gql: GraphQLClient, engine: AsyncEngine) -> None:
    now = datetime.now(UTC)
    await insert_sessions(
        engine,
        session_row(id="old", updated_at=T0),
        session_row(id="new", updated_at=now - timedelta(seconds=5)),
    )

    await check(
        gql,
        [
            ({"updatedAt": {"gt": T0.isoformat()}}, {"new"}),
            ({"updatedAt": {"lte": T0.isoformat()}}, {"old"}),
            ({"updatedAt": {"lastSeconds": 600}}, {"new"}),
        ],
    )


async def test_last_seconds_reads_the_database_clock(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given sessions started moments ago, hours ago, in the future and never
    now = datetime.now(UTC)
    await insert_sessions(
        engine,
        session_row(id="recent", started_at=now - timedelta(seconds=10)),
        session_row(id="hours", started_at=now - 3 * HOUR),
        session_row(id="future", started_at=now + HOUR, completed_at=now + 2 * HOUR),
        session_row(id="undated", started_at=None),
    )

    await check(
        gql,
        [
            ({"startedAt": {"lastSeconds": 600}}, {"recent", "future"}),
            ({"startedAt": {"lastSeconds": 4 * 3600}}, {"recent", "hours", "future"}),
            ({"startedAt": {"lastSeconds": 31_622_400}}, {"recent", "hours", "future"}),
            # AND'ed with the other bounds of the range
            ({"startedAt": {"lastSeconds": 4 * 3600, "lt": now.isoformat()}}, {"recent", "hours"}),
            ({"startedAt": {"lastSeconds": 600, "gt": now.isoformat()}}, {"future"}),
            ({"not": {"startedAt": {"lastSeconds": 600}}}, {"hours", "undated"}),
            ({"completedAt": {"lastSeconds": 60}}, {"future"}),
        ],
    )


@pytest.mark.parametrize("seconds", [0, -5, 31_622_401])
async def test_last_seconds_out_of_range_is_refused(gql: GraphQLClient, seconds: int) -> None:
    body = await gql.raw(QUERY, {"filter": {"and": [{"startedAt": {"lastSeconds": seconds}}]}})

    message = refused(body, "filter.and[0].startedAt.lastSeconds")
    assert "31,622,400" in message


# --- numbers -------------------------------------------------------------------------------------

TOKEN_FIELDS = [
    ("inputTokens", "input_tokens"),
    ("outputTokens", "output_tokens"),
    ("cacheReadTokens", "cache_read_tokens"),
    ("cacheCreationTokens", "cache_creation_tokens"),
    ("totalTokens", "total_tokens"),
]


@pytest.mark.parametrize(
    ("field", "column"),
    [*TOKEN_FIELDS, *COUNTER_FIELDS],
)
async def test_int_ranges_on_each_count(
    gql: GraphQLClient, engine: AsyncEngine, field: str, column: str
) -> None:
    await insert_sessions(
        engine,
        session_row(id="zero", **{column: 0}),
        session_row(id="ten", **{column: 10}),
        session_row(id="hundred", **{column: 100}),
    )

    await check(
        gql,
        [
            ({field: {"gt": 10}}, {"hundred"}),
            ({field: {"gte": 10}}, {"ten", "hundred"}),
            ({field: {"lt": 10}}, {"zero"}),
            ({field: {"lte": 10}}, {"zero", "ten"}),
            ({field: {"gt": 0, "lt": 100}}, {"ten"}),
            ({field: {"gt": 100}}, set()),
            ({field: {"gte": -2147483648, "lte": 2147483647}}, {"zero", "ten", "hundred"}),
            ({"not": {field: {"gte": 10}}}, {"zero"}),
        ],
    )


COSTS = {
    "c-zero": "0",
    "c-tenth": "0.1",
    "c-three-tenths": "0.3",
    "c-just-over-one": "1.0000000001",
    "c-one-and-half": "1.5",
    "c-wide": "1234.5678901234",
}


async def test_decimal_ranges_are_exact(gql: GraphQLClient, engine: AsyncEngine) -> None:
    # given costs a double does not hold exactly
    await insert_sessions(
        engine, *(session_row(id=id, total_cost_usd=Decimal(v)) for id, v in COSTS.items())
    )
    above_one = {"c-just-over-one", "c-one-and-half", "c-wide"}
    everyone = set(COSTS)

    await check(
        gql,
        [
            ({"totalCostUsd": {"gte": "0.1"}}, everyone - {"c-zero"}),
            ({"totalCostUsd": {"gt": "0.1"}}, everyone - {"c-zero", "c-tenth"}),
            ({"totalCostUsd": {"lt": "0.1"}}, {"c-zero"}),
            ({"totalCostUsd": {"lte": "0.1"}}, {"c-zero", "c-tenth"}),
            ({"totalCostUsd": {"lte": "0.10"}}, {"c-zero", "c-tenth"}),
            # bounds a double cannot tell from 0.1, and bounds off the 10-place grid
            ({"totalCostUsd": {"gte": "0.10000000000000001"}}, everyone - {"c-zero", "c-tenth"}),
            ({"totalCostUsd": {"gt": "0.09999999999999999"}}, everyone - {"c-zero"}),
            ({"totalCostUsd": {"lte": "0.09999999999999999"}}, {"c-zero"}),
            ({"totalCostUsd": {"lt": "0.10000000000000001"}}, {"c-zero", "c-tenth"}),
            ({"totalCostUsd": {"gt": "1"}}, above_one),
            ({"totalCostUsd": {"gte": "1.00000000005"}}, above_one),
            ({"totalCostUsd": {"lte": "1.00000000009"}}, {"c-zero", "c-tenth", "c-three-tenths"}),
            ({"totalCostUsd": {"gte": "1.5", "lte": "1.5"}}, {"c-one-and-half"}),
            ({"totalCostUsd": {"gte": "1234.56789012340"}}, {"c-wide"}),
            ({"totalCostUsd": {"gt": "1234.5678901234"}}, set()),
            ({"totalCostUsd": {"gt": 0.2}}, everyone - {"c-zero", "c-tenth"}),
            # magnitudes no column holds
            ({"totalCostUsd": {"gt": "1e30"}}, set()),
            ({"totalCostUsd": {"lt": "1e30", "gt": "-1e30"}}, everyone),
            ({"totalCostUsd": {"lt": "1E+999999"}}, everyone),
            ({"totalCostUsd": {"gt": "1e-30"}}, everyone - {"c-zero"}),
            ({"totalCostUsd": {"lte": "1e-999999"}}, {"c-zero"}),
            ({"totalCostUsd": {"gte": "-0"}}, everyone),
        ],
    )


async def test_float_ranges(gql: GraphQLClient, engine: AsyncEngine) -> None:
    await insert_sessions(
        engine,
        session_row(id="unknown", duration_seconds=None),
        session_row(id="half", duration_seconds=0.5),
        session_row(id="one", duration_seconds=1.0),
        session_row(id="long", duration_seconds=2.5),
    )

    await check(
        gql,
        [
            ({"durationSeconds": {"gt": 0.5}}, {"one", "long"}),
            ({"durationSeconds": {"gte": 0.5}}, {"half", "one", "long"}),
            ({"durationSeconds": {"lt": 1}}, {"half"}),
            ({"durationSeconds": {"lte": 1, "gt": 0.5}}, {"one"}),
            ({"durationSeconds": {"gte": -1e308}}, {"half", "one", "long"}),
            ({"not": {"durationSeconds": {"gt": 0.5}}}, {"unknown", "half"}),
        ],
    )


@pytest.mark.parametrize("bound", ["1e999", "-1e999"])
async def test_non_finite_float_bounds_are_refused(gql: GraphQLClient, bound: str) -> None:
    body = await gql.raw(
        f"{{ sessions(filter: {{durationSeconds: {{lt: {bound}}}}}) {{ totalCount }} }}"
    )

    message = refused(body, "filter.durationSeconds.lt")
    assert "finite" in message


async def test_cache_hit_ratio(gql: GraphQLClient, engine: AsyncEngine) -> None:
    # cacheReadTokens / (inputTokens + cacheReadTokens + cacheCreationTokens)
    def tokens(input: int, read: int, creation: int) -> dict[str, int]:
        return {"input_tokens": input, "cache_read_tokens": read, "cache_creation_tokens": creation}

    await insert_sessions(
        engine,
        session_row(id="none", **tokens(0, 0, 0)),
        session_row(id="half", **tokens(50, 50, 0)),
        session_row(id="all", **tokens(0, 100, 0)),
        session_row(id="nothing", **tokens(100, 0, 0)),
        session_row(id="third", **tokens(1, 1, 1)),
        session_row(id="huge", **tokens(2**62, 2**62, 2**62)),
    )

    await check(
        gql,
        [
            ({"cacheHitRatio": {"gte": 0.5}}, {"half", "all"}),
            ({"cacheHitRatio": {"gt": 0.5}}, {"all"}),
            ({"cacheHitRatio": {"lte": 0}}, {"nothing"}),
            ({"cacheHitRatio": {"gte": 0}}, {"half", "all", "nothing", "third", "huge"}),
            ({"cacheHitRatio": {"gte": 1 / 3, "lte": 1 / 3}}, {"third", "huge"}),
            ({"cacheHitRatio": {"lt": 0.34, "gt": 0.33}}, {"third", "huge"}),
            ({"not": {"cacheHitRatio": {"gte": 0}}}, {"none"}),
        ],
    )


# --- errors --------------------------------------------------------------------------------------


async def test_has_error_and_error_message(gql: GraphQLClient, engine: AsyncEngine) -> None:
    await insert_sessions(
        engine,
        session_row(id="timeout", error_message="Tool execution timed out"),
        session_row(id="rate", error_message="RATE limit exceeded"),
        session_row(id="accents", error_message="Émoji café É"),
        session_row(id="wild", error_message="100% done_ok"),
        session_row(id="slash", error_message="back\\slash"),
        session_row(id="fine", error_message=None),
    )
    failed = {"timeout", "rate", "accents", "wild", "slash"}

    await check(
        gql,
        [
            ({"hasError": True}, failed),
            ({"hasError": False}, {"fine"}),
            ({"errorMessage": {"contains": "timed OUT"}}, {"timeout"}),
            ({"errorMessage": {"contains": "rate LIMIT"}}, {"rate"}),
            # only A-Z fold: É and é are different characters
            ({"errorMessage": {"contains": "é"}}, {"accents"}),
            ({"errorMessage": {"contains": "émoji"}}, set()),
            ({"errorMessage": {"contains": "ÉMOJI"}}, {"accents"}),
            ({"errorMessage": {"contains": "Émoji CAFÉ"}}, set()),
            ({"errorMessage": {"contains": "Émoji CAFé"}}, {"accents"}),
            ({"errorMessage": {"contains": "E"}}, {"timeout", "rate", "wild"}),
            # literal: no wildcards
            ({"errorMessage": {"contains": "%"}}, {"wild"}),
            ({"errorMessage": {"contains": "_"}}, {"wild"}),
            ({"errorMessage": {"contains": "0%_"}}, set()),
            ({"errorMessage": {"contains": "\\"}}, {"slash"}),
            ({"errorMessage": {"contains": " "}}, {"timeout", "rate", "accents", "wild"}),
            ({"not": {"errorMessage": {"contains": "limit"}}}, {*failed, "fine"} - {"rate"}),
            ({"errorMessage": None}, {*failed, "fine"}),
        ],
    )


async def test_empty_contains_is_refused(gql: GraphQLClient) -> None:
    body = await gql.raw(QUERY, {"filter": {"or": [{}, {"errorMessage": {"contains": ""}}]}})

    refused(body, "filter.or[1].errorMessage.contains")


# --- metadata ------------------------------------------------------------------------------------


async def test_metadata_matches(gql: GraphQLClient, engine: AsyncEngine) -> None:
    # given metadata whose values differ only in type, order or nesting
    await insert_sessions(
        engine,
        session_row(
            id="m1",
            metadata={
                "flag": True,
                "n": 1,
                "s": "1",
                "obj": {"a": 1, "b": [1, 2]},
                "arr": [1, 2],
                "nil": None,
                "a.b": "dotted",
                'q"k': "quoted",
                "big": 2**64,
                "text": "é",
            },
        ),
        session_row(
            id="m2",
            metadata={
                "flag": 1,
                "n": 1.0,
                "s": 1,
                "obj": {"b": [1, 2], "a": 1.0},
                "arr": [2, 1],
                "nested": {"x": {"y": [True, None, "z"]}},
            },
        ),
        session_row(
            id="m3",
            metadata={"flag": False, "n": 2.5, "obj": {"a": 1}, "arr": [], "empty": {}},
        ),
        session_row(id="m4", metadata={}),
    )
    everyone = {"m1", "m2", "m3", "m4"}

    def has(key: str, *equals: Any) -> dict[str, Any]:
        match = {"key": key, "equals": equals[0]} if equals else {"key": key}
        return {"metadata": [match]}

    await check(
        gql,
        [
            (has("flag"), {"m1", "m2", "m3"}),
            (has("flag", True), {"m1"}),
            (has("flag", 1), {"m2"}),
            (has("flag", False), {"m3"}),
            (has("flag", 0), set()),
            (has("n", 1), {"m1", "m2"}),
            (has("n", 1.0), {"m1", "m2"}),
            (has("n", 2.5), {"m3"}),
            (has("n", "1"), set()),
            (has("s", "1"), {"m1"}),
            (has("s", 1), {"m2"}),
            (has("obj", {"a": 1, "b": [1, 2]}), {"m1", "m2"}),
            (has("obj", {"b": [1.0, 2], "a": 1}), {"m1", "m2"}),
            (has("obj", {"a": 1}), {"m3"}),
            (has("obj", {"b": [2, 1], "a": 1}), set()),
            (has("obj", {"a": 1, "b": [1, 2], "c": None}), set()),
            (has("obj", [1, 2]), set()),
            (has("arr", [1, 2]), {"m1"}),
            (has("arr", [2, 1]), {"m2"}),
            (has("arr", []), {"m3"}),
            (has("arr", {}), set()),
            (has("empty", {}), {"m3"}),
            (has("empty", []), set()),
            (has("nil"), {"m1"}),
            (has("nil", None), {"m1"}),
            (has("missing", None), set()),
            (has("a.b"), {"m1"}),
            (has("a.b", "dotted"), {"m1"}),
            (has("a"), set()),
            (has('q"k', "quoted"), {"m1"}),
            (has("big", 2**64), {"m1"}),
            (has("text", "é"), {"m1"}),
            (has("text", "É"), set()),
            (has("nested", {"x": {"y": [True, None, "z"]}}), {"m2"}),
            (has("nested", {"x": {"y": [1, None, "z"]}}), set()),
            (has("nested", {"x": {"y": [True, None]}}), set()),
            ({"metadata": []}, everyone),
            ({"metadata": [{"key": "flag"}, {"key": "arr", "equals": []}]}, {"m3"}),
            ({"not": has("flag")}, {"m4"}),
            ({"not": has("nil", None)}, everyone - {"m1"}),
        ],
    )


async def test_metadata_equals_as_a_document_literal(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    await insert_sessions(
        engine,
        session_row(id="yes", metadata={"labels": ["a", "b"], "owner": {"team": "infra"}}),
        session_row(id="no", metadata={"labels": ["b", "a"], "owner": {"team": "web"}}),
    )

    data = await gql(
        '{ sessions(filter: {metadata: [{key: "labels", equals: ["a", "b"]}, '
        '{key: "owner", equals: {team: "infra"}}]}) { nodes { id } } }'
    )

    assert data["sessions"]["nodes"] == [{"id": "yes"}]


# --- hasOperation --------------------------------------------------------------------------------


async def test_has_operation(gql: GraphQLClient, engine: AsyncEngine) -> None:
    # given sessions with different operations, and one without any
    await insert_sessions(engine, *(session_row(id=i) for i in ("o1", "o2", "o3", "o4")))
    await insert_operations(
        engine,
        operation_row(
            "o1",
            operation_type="tool_execution_completed",
            tool_name="Bash",
            success=True,
            timestamp=T0,
            git={"branch": "main", "repo": "acme/api"},
        ),
        operation_row("o1", operation_type="message_response", timestamp=T0),
        operation_row(
            "o2",
            operation_type="tool_execution_failed",
            tool_name="bash",
            success=False,
            timestamp=T0 + HOUR,
        ),
        operation_row(
            "o2", operation_type="git_commit", timestamp=T0 + HOUR, git={"branch": "feature/x"}
        ),
        operation_row("o4", operation_type="git_push", timestamp=None, git={"branch": 5}),
    )
    later = (T0 + HOUR / 2).isoformat()

    await check(
        gql,
        [
            ({"hasOperation": {}}, {"o1", "o2", "o4"}),
            ({"not": {"hasOperation": {}}}, {"o3"}),
            ({"hasOperation": {"types": ["git_commit", "nope"]}}, {"o2"}),
            ({"hasOperation": {"types": []}}, set()),
            ({"hasOperation": {"typePrefix": "tool_"}}, {"o1", "o2"}),
            ({"hasOperation": {"typePrefix": "git"}}, {"o2", "o4"}),
            ({"hasOperation": {"typePrefix": "Tool"}}, set()),
            ({"hasOperation": {"typePrefix": "tool%"}}, set()),
            ({"hasOperation": {"toolName": {"eq": "Bash"}}}, {"o1"}),
            ({"hasOperation": {"toolName": {"prefix": "ba"}}}, {"o2"}),
            ({"hasOperation": {"toolName": {"isNull": True}}}, {"o1", "o2", "o4"}),
            ({"hasOperation": {"toolName": {"in": []}}}, set()),
            ({"hasOperation": {"toolName": {}}}, {"o1", "o2", "o4"}),
            ({"hasOperation": {"success": False}}, {"o2"}),
            ({"hasOperation": {"success": True}}, {"o1", "o2", "o4"}),
            # every condition holds for the same operation
            ({"hasOperation": {"types": ["tool_execution_completed"], "success": False}}, set()),
            ({"hasOperation": {"typePrefix": "git", "toolName": {"isNull": False}}}, set()),
            ({"hasOperation": {"timestamp": {"gte": later}}}, {"o2"}),
            ({"hasOperation": {"timestamp": {"lt": later}}}, {"o1"}),
            ({"hasOperation": {"timestamp": {}}}, {"o1", "o2", "o4"}),
            ({"hasOperation": {"gitBranch": {"eq": "main"}}}, {"o1"}),
            ({"hasOperation": {"gitBranch": {"prefix": "feature/"}}}, {"o2"}),
            ({"hasOperation": {"gitBranch": {"eq": "5"}}}, set()),
            ({"hasOperation": {"gitBranch": {"isNull": False}}}, {"o1", "o2"}),
            (
                {"hasOperation": {"gitBranch": {"isNull": False}, "typePrefix": "tool"}},
                {"o1"},
            ),
            ({"hasOperation": {"gitRepo": {"eq": "acme/api"}}}, {"o1"}),
            ({"hasOperation": {"gitRepo": {"isNull": False}, "success": False}}, set()),
            (
                {"or": [{"hasOperation": {"success": False}}, {"not": {"hasOperation": {}}}]},
                {"o2", "o3"},
            ),
        ],
    )


# --- and, or, not --------------------------------------------------------------------------------


async def test_and_or_not(gql: GraphQLClient, engine: AsyncEngine) -> None:
    await insert_sessions(
        engine,
        session_row(id="a", workflow_id="wf-1", agent_model="opus", status="completed"),
        session_row(id="b", workflow_id="wf-1", agent_model=None, status="failed"),
        session_row(id="c", workflow_id="wf-2", agent_model="opus", status="running"),
        session_row(id="d", workflow_id=None, agent_model="haiku", status="completed"),
    )
    everyone = {"a", "b", "c", "d"}
    wf1 = {"workflowId": {"eq": "wf-1"}}
    opus = {"agentModel": {"eq": "opus"}}

    await check(
        gql,
        [
            ({}, everyone),
            ({"and": []}, everyone),
            ({"or": []}, set()),
            ({"not": {}}, set()),
            ({"not": {"not": {}}}, everyone),
            ({"and": [{}]}, everyone),
            ({"or": [{}]}, everyone),
            ({"or": [{}, {"or": []}]}, everyone),
            ({"and": [{}, {"or": []}]}, set()),
            ({"and": [wf1, opus]}, {"a"}),
            ({**wf1, **opus}, {"a"}),
            ({"or": [wf1, opus]}, {"a", "b", "c"}),
            ({"not": {"or": [wf1, opus]}}, {"d"}),
            # two-valued: b has no model, so it is "not opus", and "not (wf-1 and opus)"
            ({"not": opus}, {"b", "d"}),
            ({"not": {"and": [wf1, opus]}}, {"b", "c", "d"}),
            ({"not": {"not": opus}}, {"a", "c"}),
            ({"not": {"agentModel": {"eq": "opus"}}, "workflowId": {"isNull": False}}, {"b"}),
            ({"or": [{"not": opus}, {"status": ["RUNNING"]}]}, {"b", "c", "d"}),
            ({"and": [{"or": [wf1, {"workflowId": {"isNull": True}}]}, {"not": opus}]}, {"b", "d"}),
            ({"or": [{"and": [wf1, {"not": opus}]}, {"and": [{"not": wf1}, opus]}]}, {"b", "c"}),
        ],
    )


async def test_filter_is_anded_with_the_flat_arguments(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    await insert_sessions(
        engine,
        session_row(id="a", workflow_id="wf-1", status="completed", started_at=T0),
        session_row(id="b", workflow_id="wf-1", status="failed", started_at=T0 + HOUR),
        session_row(id="c", workflow_id="wf-2", status="completed", started_at=T0 + 2 * HOUR),
        session_row(id="d", workflow_id="wf-1", status="completed", started_at=None),
    )
    query = """query ($filter: SessionFilter) {
      sessions(workflowId: "wf-1", statuses: [COMPLETED, FAILED],
               startedAfter: "2026-04-18T08:00:00Z", filter: $filter) {
        totalCount nodes { id } } }"""

    async def ids(filter: dict[str, Any] | None) -> list[str]:
        data = (await gql(query, {"filter": filter}))["sessions"]
        assert data["totalCount"] == len(data["nodes"])
        return [n["id"] for n in data["nodes"]]

    assert await ids(None) == ["b", "a"]
    assert await ids({"status": ["COMPLETED"]}) == ["a"]
    assert await ids({"workflowId": {"eq": "wf-2"}}) == []
    assert await ids({"or": []}) == []
    assert await ids({"not": {"startedAt": {"gt": T0.isoformat()}}}) == ["a"]


@pytest.mark.parametrize(
    "order",
    ["{field: STARTED_AT}", "{field: COMPLETED_AT, direction: ASC}", "{field: TOTAL_COST_USD}"],
)
async def test_pages_of_a_filter_follow_the_cursor(
    gql: GraphQLClient, engine: AsyncEngine, order: str
) -> None:
    # given sessions of several statuses, some without a completion time
    rows = [
        session_row(
            id=f"s{n:02}",
            status=("completed", "failed", "running")[n % 3],
            started_at=T0 + n * HOUR,
            completed_at=None if n % 4 == 0 else T0 + n * HOUR,
            total_cost_usd=Decimal(n % 5),
            repos=["acme/api"] if n % 2 else [],
        )
        for n in range(24)
    ]
    await insert_sessions(engine, *rows)
    wanted = {r["id"] for r in rows if r["repos"] and r["status"] in ("completed", "running")}
    query = f"""query ($after: String) {{
      sessions(first: 3, after: $after, orderBy: {order}, statuses: [COMPLETED, RUNNING],
               filter: {{repo: {{eq: "acme/api"}}}}) {{
        totalCount nodes {{ id }} pageInfo {{ hasNextPage endCursor }} }} }}"""

    # when every page is read
    seen: list[str] = []
    after = None
    while True:
        page = (await gql(query, {"after": after}))["sessions"]
        assert page["totalCount"] == len(wanted)
        seen += [n["id"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]

    # then each match came once
    assert sorted(seen) == sorted(wanted)


# --- limits and bad input ------------------------------------------------------------------------


def _nested(levels: int) -> tuple[dict[str, Any], str]:
    """A filter ``levels`` deep through and/or/not, and the path of its innermost object."""
    filter: dict[str, Any] = {"workflowId": {"eq": "x"}}
    path = ""
    for level in range(levels - 1):
        kind = ("and", "or", "not")[level % 3]
        filter = {kind: filter} if kind == "not" else {kind: [filter, {}]}
        path = (f".{kind}" if kind == "not" else f".{kind}[0]") + path
    return filter, "filter" + path


async def test_five_levels_are_accepted_and_six_refused(gql: GraphQLClient) -> None:
    five, _ = _nested(5)
    six, path = _nested(6)

    accepted = await gql.raw(QUERY, {"filter": five})
    body = await gql.raw(QUERY, {"filter": six})

    assert "errors" not in accepted, accepted
    assert path == "filter.or[0].and[0].not.or[0].and[0]"
    assert "level 6" in refused(body, path)


async def test_fifty_leaves_are_accepted_and_the_fifty_first_refused(gql: GraphQLClient) -> None:
    # 48 leaves in an or, then two more conditions in a range: 50
    leaves = [{"agentModel": {"eq": f"m{n}"}} for n in range(48)]
    fifty = {"or": leaves, "inputTokens": {"gt": 1, "lt": 5}}
    fifty_one = {"or": leaves, "inputTokens": {"gt": 1, "gte": 0, "lt": 5}}

    accepted = await gql.raw(QUERY, {"filter": fifty})
    body = await gql.raw(QUERY, {"filter": fifty_one})

    assert "errors" not in accepted, accepted
    # counted in the input's field order: gt, gte, lt
    assert "more than 50 conditions" in refused(body, "filter.inputTokens.lt")


async def test_every_kind_of_condition_counts_as_a_leaf(gql: GraphQLClient) -> None:
    # 1 (status) + 1 (hasError) + 2 (metadata key, equals) + 1 (contains) + 1 (empty
    # hasOperation) + 4 (StringMatch) + 5 (DateTimeRange) + 3 (OperationMatch) = 18
    eighteen = {
        "status": ["RUNNING"],
        "hasError": False,
        "metadata": [{"key": "k", "equals": 1}],
        "errorMessage": {"contains": "x"},
        "or": [
            {"hasOperation": {}},
            {"workflowId": {"eq": "a", "in": ["b"], "prefix": "c", "isNull": False}},
        ],
        "startedAt": {
            "gt": T0.isoformat(),
            "gte": T0.isoformat(),
            "lt": T0.isoformat(),
            "lte": T0.isoformat(),
            "lastSeconds": 5,
        },
        "not": {"hasOperation": {"types": ["x"], "typePrefix": "y", "success": True}},
    }
    padding = [{"agentModel": {"eq": f"m{n}"}} for n in range(32)]

    accepted = await gql.raw(QUERY, {"filter": {**eighteen, "and": padding}})
    body = await gql.raw(QUERY, {"filter": {**eighteen, "and": [*padding, {"hasError": True}]}})

    assert "errors" not in accepted, accepted
    # counted in the input's field order (and, or, not, ..., metadata): the last is 51st
    refused(body, "filter.metadata[0].equals")


@pytest.mark.parametrize(
    ("filter", "field"),
    [
        ({"workflowId": {"in": [f"w{n}" for n in range(101)]}}, "filter.workflowId.in"),
        ({"status": ["RUNNING"] * 101}, "filter.status"),
        ({"hasOperation": {"types": [f"t{n}" for n in range(101)]}}, "filter.hasOperation.types"),
        ({"repo": {"in": ["a"] * 101}}, "filter.repo.in"),
    ],
)
async def test_lists_of_more_than_a_hundred_values_are_refused(
    gql: GraphQLClient, filter: dict[str, Any], field: str
) -> None:
    body = await gql.raw(QUERY, {"filter": filter})

    assert "at most 100 values" in refused(body, field)


async def test_a_hundred_values_are_accepted(gql: GraphQLClient, engine: AsyncEngine) -> None:
    await insert_sessions(engine, session_row(id="s", workflow_id="w99"))

    ids = await matching(gql, {"workflowId": {"in": [f"w{n}" for n in range(100)]}})

    assert ids == {"s"}


@pytest.mark.parametrize(
    ("filter", "field"),
    [
        ({"workflowId": {"eq": "a\x00b"}}, "filter.workflowId.eq"),
        ({"agentModel": {"in": ["ok", "a\x00"]}}, "filter.agentModel.in[1]"),
        ({"repo": {"prefix": "\x00"}}, "filter.repo.prefix"),
        ({"errorMessage": {"contains": "\x00"}}, "filter.errorMessage.contains"),
        ({"metadata": [{"key": "a\x00"}]}, "filter.metadata[0].key"),
        ({"metadata": [{"key": "a", "equals": {"b": "\x00"}}]}, "filter.metadata[0].equals.b"),
        ({"hasOperation": {"types": ["\x00"]}}, "filter.hasOperation.types[0]"),
        ({"hasOperation": {"gitBranch": {"eq": "\x00"}}}, "filter.hasOperation.gitBranch.eq"),
    ],
)
async def test_nul_characters_are_refused(
    gql: GraphQLClient, filter: dict[str, Any], field: str
) -> None:
    body = await gql.raw(QUERY, {"filter": filter})

    assert "NUL" in refused(body, field)


@pytest.mark.parametrize(
    "variables",
    [
        '{"filter": {"workflowId": {"eq": "\\ud800"}}}',
        '{"filter": {"metadata": [{"key": "k", "equals": NaN}]}}',
        '{"filter": {"durationSeconds": {"gt": Infinity}}}',
        '{"filter": {"totalCostUsd": {"gt": "NaN"}}}',
        '{"filter": {"totalCostUsd": {"gt": "1e"}}}',
        '{"filter": {"startedAt": {"gt": "yesterday"}}}',
        '{"filter": {"workflowId": {"eq": 5}}}',
        '{"filter": {"workflowId": "wf"}}',
        '{"filter": {"inputTokens": {"gt": 4294967296}}}',
        '{"filter": {"metadata": [{"equals": 1}]}}',
        '{"filter": {"errorMessage": {}}}',
        '{"filter": {"and": [null]}}',
        '{"filter": []}',
    ],
)
async def test_bad_filters_are_client_errors(gql: GraphQLClient, variables: str) -> None:
    # sent as written: some are not what a JSON encoder would write
    response = await gql.http.post(
        "/graphql",
        content=f'{{"query": {json.dumps(QUERY)}, "variables": {variables}}}',
        headers={"content-type": "application/json"},
    )

    assert response.status_code in (200, 400), response.text
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error


@pytest.mark.sqlite_only
async def test_malformed_json_text_never_fails_a_filter(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given JSON columns that another writer filled with text that is not JSON
    await insert_sessions(engine, session_row(id="broken"), session_row(id="fine", repos=["a/b"]))
    await insert_operations(engine, operation_row("broken"))
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(
                "UPDATE sessions SET repos = '[not json', metadata = '{oops' WHERE id = 'broken'"
            )
        )
        await conn.execute(sa.text("UPDATE operations SET git = 'nope{'"))

    await check(
        gql,
        [
            ({"repo": {"isNull": True}}, {"broken"}),
            ({"repo": {"eq": "a/b"}}, {"fine"}),
            ({"metadata": [{"key": "k"}]}, set()),
            ({"not": {"metadata": [{"key": "k", "equals": {"a": 1}}]}}, {"broken", "fine"}),
            ({"hasOperation": {"gitBranch": {"isNull": True}}}, {"broken"}),
        ],
    )


async def test_the_filter_costs_no_more_nodes(gql: GraphQLClient) -> None:
    body = await gql.raw(
        "{ sessions(first: 7, filter: {or: [{status: [RUNNING]}, {hasOperation: {}}]}) "
        "{ nodes { id } } }"
    )

    assert body["extensions"] == cost(7)


async def test_an_operation_match_compiles_for_a_list_of_operations(engine: AsyncEngine) -> None:
    # searchOperations(operation:) will reuse the conditions of hasOperation on its own rows
    await insert_sessions(engine, session_row(id="s"))
    await insert_operations(
        engine,
        operation_row("s", operation_id="a", tool_name="Bash", git={"branch": "main"}),
        operation_row("s", operation_id="b", tool_name="Bash", success=False),
        operation_row("s", operation_id="c", tool_name="Read", git={"branch": "main"}),
    )
    match = OperationMatch(tool_name=StringMatch(eq="Bash"), git_branch=StringMatch(is_null=False))
    where = operation_where(match)
    assert where is not None
    assert isinstance(where.shape, filtering.HasOperation)

    stmt = sa.select(operations.c.operation_id).where(
        filtering.operation_condition(where.shape, engine.dialect.name)
    )
    async with engine.connect() as conn:
        found = (await conn.execute(stmt, dict(where.params))).scalars().all()

    assert found == ["a"]
    assert operation_where(OperationMatch()) is None
    assert operation_where(OperationMatch(types=[])) == filtering.Where(filtering.FALSE, {})


@settings(max_examples=500, derandomize=True, deadline=None)
@given(
    stored=st.decimals(min_value=0, max_value=10**6, places=6, allow_nan=False),
    bound=st.one_of(
        st.decimals(min_value=-10, max_value=10**6 + 1, places=12, allow_nan=False),
        st.decimals(allow_nan=False, allow_infinity=False),
    ),
    operator=st.sampled_from(["gt", "gte", "lt", "lte"]),
)
def test_money_bounds_select_the_stored_decimals_exactly(
    stored: Decimal, bound: Decimal, operator: str
) -> None:
    # A stored cost (at most 10 places, as writes allow) reads back as the decimal of its
    # double's shortest repr on SQLite; the bound the filter sends selects exactly the
    # doubles whose decimals meet the decimal bound, and the grid bound the same values.
    compare = {
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
    }[operator]
    double = float(stored)
    assert Decimal(repr(double)) == stored
    grid = on_money_grid(bound, operator)

    assert compare(stored, grid) == compare(stored, bound)
    assert compare(double, double_bound(grid, operator)) == compare(stored, bound)


@pytest.mark.postgres_only
async def test_string_matches_ignore_the_columns_collation(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given text columns under a linguistic collation, whose order is not the bytes'
    # (and whose lower() would fold more than A-Z)
    await insert_sessions(
        engine,
        *(
            session_row(id=id, agent_model=value, error_message=f"Failed: {value.upper()}")
            for id, value in STRING_VALUES.items()
        ),
    )
    columns = ("agent_model", "error_message")
    async with engine.begin() as conn:
        for column in columns:
            await conn.execute(
                sa.text(f'ALTER TABLE sessions ALTER COLUMN {column} TYPE text COLLATE "en-x-icu"')
            )
    try:
        # when / then: the same answers as byte-wise
        await check(
            gql,
            [
                ({"agentModel": {"eq": "alpha"}}, {"v-plain"}),
                ({"agentModel": {"in": ["ALPHA", "Alpha"]}}, {"v-upper"}),
                (
                    {"agentModel": {"prefix": "al"}},
                    {"v-plain", "v-percent", "v-underscore", "v-backslash"},
                ),
                ({"agentModel": {"prefix": "A"}}, {"v-upper"}),
                ({"agentModel": {"prefix": "e"}}, set()),
                (
                    {"errorMessage": {"contains": "failed: al"}},
                    {"v-plain", "v-upper", "v-percent", "v-underscore", "v-backslash"},
                ),
                ({"errorMessage": {"contains": "élan"}}, set()),
                ({"errorMessage": {"contains": "éLAN"}}, set()),
            ],
        )
    finally:
        async with engine.begin() as conn:
            for column in columns:
                await conn.execute(
                    sa.text(
                        f'ALTER TABLE sessions ALTER COLUMN {column} TYPE text COLLATE "default"'
                    )
                )


async def test_cache_hit_ratio_bounds_agree_with_the_field(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given ratios that are not exact in binary
    counts = [(1, 2, 3), (7, 11, 13), (123456789, 987654321, 555), (3, 1, 0), (0, 0, 0)]
    await insert_sessions(
        engine,
        *(
            session_row(id=f"r{n}", input_tokens=i, cache_read_tokens=r, cache_creation_tokens=c)
            for n, (i, r, c) in enumerate(counts)
        ),
    )
    data = await gql("{ sessions { nodes { id cacheHitRatio } } }")

    # when each session's own ratio is both bounds, then it is the one found
    for node in data["sessions"]["nodes"]:
        ratio = node["cacheHitRatio"]
        if ratio is None:
            continue
        assert await matching(gql, {"cacheHitRatio": {"gte": ratio, "lte": ratio}}) == {node["id"]}
