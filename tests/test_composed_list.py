"""A list with a composed filter, walked page by page across the sessions with a value in
the order column and those without (SPEC 2, 5): the NULL branches of a page run only
when the valued rows leave it short, and the order and cursors stay the same."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import T0, GraphQLClient, insert_operations, insert_sessions, operation_row
from tests.helpers import session_row as base_row

HOUR = timedelta(hours=1)

QUERY = """query ($filter: SessionFilter, $statuses: [SessionStatus!], $first: Int,
                  $after: String, $orderBy: SessionOrder) {
  sessions(filter: $filter, statuses: $statuses, first: $first, after: $after,
           orderBy: $orderBy) {
    totalCount
    nodes { id }
    pageInfo { hasNextPage endCursor }
  }
}"""

#: The bench's composed filter (bench/scale.py, "composed filter list").
COMPOSED = {
    "or": [{"agentModel": {"eq": "claude-opus-4-7"}}, {"agentModel": {"eq": "gpt-5"}}],
    "totalCostUsd": {"gte": "1", "lt": "10"},
    "hasOperation": {"gitBranch": {"eq": "main"}},
}
MODELS = ["claude-opus-4-7", "gpt-5", "claude-sonnet-4-6"]
COSTS = [Decimal("0.5"), Decimal(1), Decimal("9.9999"), Decimal(10), Decimal(5)]
#: Git facts of an operation: on branch main, another branch, none, a branch that is not
#: a string.
GITS: list[dict[str, Any] | None] = [
    {"branch": "main"},
    {"branch": "dev"},
    None,
    {"branch": 5},
    {"branch": "main", "repo": "acme/api"},
]


def sample(dated: int = 40, undated: int = 30) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Sessions of every model and cost, dated ones two by two at the same start (ties
    broken by id), each with up to three operations of any git facts."""
    rng = random.Random(7)
    sessions = [
        base_row(
            id=f"{'d' if i < dated else 'u'}{i:02d}",
            status="completed" if i < dated else "pending",
            agent_model=rng.choice(MODELS),
            total_cost_usd=rng.choice(COSTS),
            started_at=T0 + (i // 2) * HOUR if i < dated else None,
            duration_seconds=rng.choice([None, 1.0, 2.5]) if i < dated else None,
        )
        for i in range(dated + undated)
    ]
    operations = [
        operation_row(s["id"], operation_type="git_commit", git=rng.choice(GITS))
        for s in sessions
        for _ in range(rng.randrange(4))
    ]
    return sessions, operations


def composed_matches(
    sessions: list[dict[str, Any]], operations: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    on_main = {o["session_id"] for o in operations if (o["git"] or {}).get("branch") == "main"}
    return [
        s
        for s in sessions
        if s["agent_model"] in ("claude-opus-4-7", "gpt-5")
        and Decimal(1) <= s["total_cost_usd"] < Decimal(10)
        and s["id"] in on_main
    ]


def in_order(rows: list[dict[str, Any]], column: str, *, descending: bool) -> list[str]:
    """Value in the asked direction, ties by id in the same direction, NULLs last."""
    valued = sorted(
        (r for r in rows if r[column] is not None),
        key=lambda r: (r[column], r["id"]),
        reverse=descending,
    )
    nulls = sorted(
        (r for r in rows if r[column] is None), key=lambda r: r["id"], reverse=descending
    )
    return [r["id"] for r in valued + nulls]


async def walk(
    gql: GraphQLClient, *, first: int, **variables: Any
) -> tuple[list[str], list[dict[str, Any]]]:
    """Every page following endCursor: the ids in order, and each page's connection."""
    ids: list[str] = []
    pages: list[dict[str, Any]] = []
    after = None
    while True:
        page = (await gql(QUERY, {**variables, "first": first, "after": after}))["sessions"]
        pages.append(page)
        ids += [node["id"] for node in page["nodes"]]
        assert len(pages) <= 50, "pagination does not end"
        if not page["pageInfo"]["hasNextPage"]:
            return ids, pages
        assert len(page["nodes"]) == first
        after = page["pageInfo"]["endCursor"]


@pytest.mark.parametrize(
    ("field", "column", "descending"),
    [
        ("STARTED_AT", "started_at", True),
        ("STARTED_AT", "started_at", False),
        ("DURATION_SECONDS", "duration_seconds", False),
    ],
)
@pytest.mark.parametrize("first", [1, 2, 3, 4, 5, 7, 50])
async def test_walking_a_composed_filter_returns_each_match_once_in_order(
    gql: GraphQLClient,
    engine: AsyncEngine,
    field: str,
    column: str,
    descending: bool,
    first: int,
) -> None:
    # Given sessions with and without a value in the order column, some matching
    sessions, operations = sample()
    await insert_sessions(engine, *sessions)
    await insert_operations(engine, *operations)
    matches = composed_matches(sessions, operations)
    expected = in_order(matches, column, descending=descending)
    assert 3 <= sum(m[column] is None for m in matches) < len(matches) - 3

    # When the list is walked page by page
    order = {"field": field, "direction": "DESC" if descending else "ASC"}
    ids, pages = await walk(gql, first=first, filter=COMPOSED, orderBy=order)

    # Then each match comes once, NULLs last, and every page counts them all
    assert ids == expected
    assert {p["totalCount"] for p in pages} == {len(expected)}


@pytest.mark.parametrize("first", [1, 2, 3, 6])
async def test_walking_statuses_and_a_filter_merges_every_branch(
    gql: GraphQLClient, engine: AsyncEngine, first: int
) -> None:
    # Given sessions of three statuses, dated and not
    sessions, operations = sample()
    for i, s in enumerate(sessions):
        s["status"] = ("running", "failed", "pending")[i % 3]
    await insert_sessions(engine, *sessions)
    await insert_operations(engine, *operations)
    on_main = {s["id"] for s in composed_matches(sessions, operations)}
    chosen = [s for s in sessions if s["status"] != "failed" and s["id"] in on_main]
    expected = in_order(chosen, "started_at", descending=True)
    assert any(s["started_at"] is None for s in chosen)

    # When the list of two statuses (one branch each) with the filter is walked
    ids, pages = await walk(gql, first=first, filter=COMPOSED, statuses=["RUNNING", "PENDING"])

    # Then the branches merge in one order
    assert ids == expected
    assert {p["totalCount"] for p in pages} == {len(expected)}


async def test_a_page_the_valued_rows_fill_exactly_says_whether_more_follow(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # Given three dated matches and one undated
    sessions = [
        base_row(
            id=f"d{i}", agent_model="gpt-5", total_cost_usd=Decimal(2), started_at=T0 + i * HOUR
        )
        for i in range(3)
    ]
    sessions.append(
        base_row(id="u0", agent_model="gpt-5", total_cost_usd=Decimal(2), started_at=None)
    )
    await insert_sessions(engine, *sessions)
    await insert_operations(
        engine, *(operation_row(s["id"], git={"branch": "main"}) for s in sessions)
    )

    # When pages of exactly the dated matches, and of one more, are read
    three = (await gql(QUERY, {"filter": COMPOSED, "first": 3}))["sessions"]
    four = (await gql(QUERY, {"filter": COMPOSED, "first": 4}))["sessions"]
    rest = (
        await gql(QUERY, {"filter": COMPOSED, "first": 3, "after": three["pageInfo"]["endCursor"]})
    )["sessions"]

    # Then the undated match follows the dated ones
    assert [n["id"] for n in three["nodes"]] == ["d2", "d1", "d0"]
    assert three["pageInfo"]["hasNextPage"] is True
    assert [n["id"] for n in four["nodes"]] == ["d2", "d1", "d0", "u0"]
    assert four["pageInfo"]["hasNextPage"] is False
    assert [n["id"] for n in rest["nodes"]] == ["u0"]
    assert rest["pageInfo"]["hasNextPage"] is False


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ({"eq": "main"}, {"on-main"}),
        ({"in": ["main", "dev"]}, {"on-main", "on-dev"}),
        ({"prefix": "ma"}, {"on-main"}),
        ({"isNull": False}, {"on-main", "on-dev"}),
        ({"isNull": True}, {"no-git", "number", "on-main", "on-dev"}),
        ({"isNull": True, "eq": "main"}, set()),
    ],
)
async def test_git_matches_in_a_page_and_in_its_count_agree(
    gql: GraphQLClient, engine: AsyncEngine, match: dict[str, Any], expected: set[str]
) -> None:
    # Given sessions whose operations have git facts or none (each of the last two has
    # an operation without git facts too)
    sessions = [
        base_row(id=name, started_at=T0 if i % 2 else None)
        for i, name in enumerate(["no-git", "number", "on-main", "on-dev", "no-ops"])
    ]
    await insert_sessions(engine, *sessions)
    await insert_operations(
        engine,
        operation_row("no-git", git=None),
        operation_row("number", git={"branch": 7}),
        operation_row("on-main", git={"branch": "main"}),
        operation_row("on-main", git=None),
        operation_row("on-dev", git={"branch": "dev"}),
        operation_row("on-dev", git={"repo": "acme/api"}),
    )

    # When the sessions with such an operation are listed and counted
    page = (await gql(QUERY, {"filter": {"hasOperation": {"gitBranch": match}}, "first": 50}))[
        "sessions"
    ]

    # Then both hold exactly the expected sessions
    assert {n["id"] for n in page["nodes"]} == expected
    assert page["totalCount"] == len(expected)
