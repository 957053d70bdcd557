"""Keyset pagination of `sessions`: every order field and direction, ties, NULLs, filters."""

from __future__ import annotations

import math
import random
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import T0, GraphQLClient, insert_sessions, session_row

SESSION_COUNT = 40

_ARGS = """
  $first: Int!, $after: String, $orderBy: SessionOrder,
  $statuses: [SessionStatus!], $workflowId: String
"""
_CALL = """
  sessions(
    first: $first, after: $after, orderBy: $orderBy,
    statuses: $statuses, workflowId: $workflowId
  )
"""
PAGE_WITH_EDGES = f"""
query Page({_ARGS}) {{
  {_CALL} {{
    totalCount
    pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }}
    edges {{ cursor node {{ id }} }}
  }}
}}
"""
PAGE_WITH_NODES = f"""
query Page({_ARGS}) {{
  {_CALL} {{
    totalCount
    pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }}
    nodes {{ id }}
  }}
}}
"""

#: GraphQL order field -> the sessions column it sorts by.
ORDER_COLUMNS = {
    "STARTED_AT": "started_at",
    "COMPLETED_AT": "completed_at",
    "TOTAL_COST_USD": "total_cost_usd",
    "TOTAL_TOKENS": "total_tokens",
    "DURATION_SECONDS": "duration_seconds",
    "OPERATION_COUNT": "operation_count",
    "TOOL_CALL_COUNT": "tool_call_count",
    "FAILED_OPERATION_COUNT": "failed_operation_count",
    "UPDATED_AT": "updated_at",
}
#: Sort columns that cannot be NULL.
NOT_NULL = {
    "total_cost_usd",
    "total_tokens",
    "operation_count",
    "tool_call_count",
    "failed_operation_count",
    "updated_at",
}

COSTS = [
    Decimal("0.5"),
    Decimal("10.25"),
    Decimal("9.75"),
    Decimal("100"),
    Decimal("0"),
    Decimal("0.0438"),
]
DURATIONS = [0.5, 12.25, 3.0, 10000.0]


def sortable_rows() -> list[dict[str, Any]]:
    """40 sessions with many repeated values and several NULLs in every sortable column.

    Rows come in a shuffled order so that neither insertion order nor id order
    matches any sort order.
    """
    rows = [
        session_row(
            status=["completed", "failed", "running", "cancelled"][i % 4],
            workflow_id=["wf-a", "wf-b", None][i % 3],
            started_at=(
                None
                if i % 6 == 1
                else T0 + timedelta(minutes=i % 5, microseconds=250_000 * (i % 2))
            ),
            completed_at=None if i % 4 == 0 else T0 + timedelta(hours=1, seconds=i % 3),
            total_cost_usd=COSTS[i % len(COSTS)],
            total_tokens=(i % 4) * 1000,
            duration_seconds=None if i % 5 == 2 else DURATIONS[i % len(DURATIONS)],
            operation_count=(i * 7) % 6 * 100,
            tool_call_count=(i * 3) % 4,
            failed_operation_count=i % 3,
            updated_at=T0 + timedelta(seconds=i % 5, microseconds=1000 * (i % 2)),
        )
        for i in range(SESSION_COUNT)
    ]
    random.Random(20260418).shuffle(rows)
    return rows


def expected_order(rows: list[dict[str, Any]], column: str, *, descending: bool) -> list[str]:
    """Value in the asked direction, ties by id in the same direction, NULLs last."""
    valued = sorted(
        (r for r in rows if r[column] is not None),
        key=lambda r: (r[column], r["id"]),
        reverse=descending,
    )
    undated = sorted(
        (r for r in rows if r[column] is None), key=lambda r: r["id"], reverse=descending
    )
    return [r["id"] for r in valued + undated]


async def walk(
    gql: GraphQLClient, *, page_size: int, **variables: Any
) -> tuple[list[str], list[dict[str, Any]]]:
    """Every page following endCursor; the ids in order and each page's connection.

    Even pages select ``edges`` (and check the cursors), odd pages ``nodes``.
    """
    ids: list[str] = []
    pages: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        with_edges = len(pages) % 2 == 0
        data = await gql(
            PAGE_WITH_EDGES if with_edges else PAGE_WITH_NODES,
            {"first": page_size, "after": after, **variables},
        )
        connection = data["sessions"]
        page_info = connection["pageInfo"]
        if with_edges:
            edges = connection["edges"]
            page_ids = [edge["node"]["id"] for edge in edges]
            assert page_info["startCursor"] == edges[0]["cursor"]
            assert page_info["endCursor"] == edges[-1]["cursor"]
        else:
            page_ids = [node["id"] for node in connection["nodes"]]
        assert page_info["hasPreviousPage"] is (after is not None)
        ids.extend(page_ids)
        pages.append(connection)
        assert len(pages) <= SESSION_COUNT, "pagination does not end"
        if not page_info["hasNextPage"]:
            return ids, pages
        assert len(page_ids) == page_size
        after = page_info["endCursor"]


@pytest.mark.parametrize("direction", ["ASC", "DESC"])
@pytest.mark.parametrize("field", list(ORDER_COLUMNS))
@pytest.mark.parametrize(
    "page_size",
    [
        pytest.param(3, id="first-3-last-page-partial"),
        pytest.param(5, id="first-5-last-page-full"),
    ],
)
async def test_walking_every_page_returns_each_session_once_in_order(
    gql: GraphQLClient, engine: AsyncEngine, field: str, direction: str, page_size: int
) -> None:
    # given
    rows = await insert_sessions(engine, *sortable_rows())
    column = ORDER_COLUMNS[field]
    expected = expected_order(rows, column, descending=direction == "DESC")

    # when
    ids, pages = await walk(
        gql, page_size=page_size, orderBy={"field": field, "direction": direction}
    )

    # then
    assert len(set(ids)) == len(ids) == SESSION_COUNT
    assert ids == expected
    assert len(pages) == math.ceil(SESSION_COUNT / page_size)
    assert [len(p.get("edges", p.get("nodes"))) for p in pages[:-1]] == [page_size] * (
        len(pages) - 1
    )
    assert [p["totalCount"] for p in pages] == [SESSION_COUNT] * len(pages)


def test_the_sample_has_ties_and_nulls_in_every_sort_column() -> None:
    # given
    rows = sortable_rows()

    # then: the walk above exercises repeated values and NULLs for every field
    for field, column in ORDER_COLUMNS.items():
        values = [r[column] for r in rows if r[column] is not None]
        assert len(set(values)) < len(values) / 3, field
        nulls = sum(r[column] is None for r in rows)
        if column in NOT_NULL:
            assert nulls == 0, field
        else:
            assert nulls >= 5, field


async def test_default_order_is_newest_started_first_with_nulls_last(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    rows = await insert_sessions(engine, *sortable_rows())

    # when
    ids, pages = await walk(gql, page_size=7)

    # then
    assert ids == expected_order(rows, "started_at", descending=True)
    assert len(pages) == 6


@pytest.mark.parametrize(
    ("field", "direction"),
    [
        ("STARTED_AT", "DESC"),
        ("TOTAL_COST_USD", "ASC"),
        ("DURATION_SECONDS", "DESC"),
        ("OPERATION_COUNT", "DESC"),
        ("TOOL_CALL_COUNT", "ASC"),
        ("FAILED_OPERATION_COUNT", "DESC"),
        ("UPDATED_AT", "ASC"),
    ],
)
async def test_walking_with_filters_returns_each_matching_session_once(
    gql: GraphQLClient, engine: AsyncEngine, field: str, direction: str
) -> None:
    # given
    rows = await insert_sessions(engine, *sortable_rows())
    matching = [
        r for r in rows if r["workflow_id"] == "wf-a" and r["status"] in {"failed", "running"}
    ]
    expected = expected_order(matching, ORDER_COLUMNS[field], descending=direction == "DESC")

    # when
    ids, pages = await walk(
        gql,
        page_size=4,
        orderBy={"field": field, "direction": direction},
        statuses=["FAILED", "RUNNING"],
        workflowId="wf-a",
    )

    # then
    assert len(expected) == 6
    assert ids == expected
    assert [p["totalCount"] for p in pages] == [6, 6]


async def test_page_after_the_last_cursor_is_empty(gql: GraphQLClient, engine: AsyncEngine) -> None:
    # given
    await insert_sessions(engine, *sortable_rows())
    order = {"field": "TOTAL_TOKENS", "direction": "ASC"}
    ids, pages = await walk(gql, page_size=8, orderBy=order)
    last = pages[-1]
    assert len(ids) == SESSION_COUNT
    assert last["pageInfo"]["hasNextPage"] is False

    # when
    data = await gql(
        PAGE_WITH_EDGES, {"first": 8, "after": last["pageInfo"]["endCursor"], "orderBy": order}
    )

    # then
    assert data["sessions"] == {
        "totalCount": SESSION_COUNT,
        "pageInfo": {
            "hasNextPage": False,
            "hasPreviousPage": True,
            "startCursor": None,
            "endCursor": None,
        },
        "edges": [],
    }
    nodes = await gql(
        PAGE_WITH_NODES, {"first": 8, "after": last["pageInfo"]["endCursor"], "orderBy": order}
    )
    assert nodes["sessions"]["nodes"] == []
    assert nodes["sessions"]["pageInfo"]["endCursor"] is None


async def test_one_page_holding_everything_has_no_next_page(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    rows = await insert_sessions(engine, *sortable_rows())

    # when
    data = await gql(PAGE_WITH_EDGES, {"first": SESSION_COUNT})

    # then
    connection = data["sessions"]
    assert [e["node"]["id"] for e in connection["edges"]] == expected_order(
        rows, "started_at", descending=True
    )
    assert connection["pageInfo"]["hasNextPage"] is False
    assert connection["pageInfo"]["hasPreviousPage"] is False


async def test_empty_table_gives_an_empty_first_page(gql: GraphQLClient) -> None:
    # when
    data = await gql(PAGE_WITH_EDGES, {"first": 3})

    # then
    assert data["sessions"] == {
        "totalCount": 0,
        "pageInfo": {
            "hasNextPage": False,
            "hasPreviousPage": False,
            "startCursor": None,
            "endCursor": None,
        },
        "edges": [],
    }


@pytest.mark.parametrize(
    ("direction", "expected"),
    [
        ("ASC", ["0", "0.5", "2", "9.75", "10.25", "100", "1000.5"]),
        ("DESC", ["1000.5", "100", "10.25", "9.75", "2", "0.5", "0"]),
    ],
)
async def test_costs_sort_numerically_not_as_text(
    gql: GraphQLClient, engine: AsyncEngine, direction: str, expected: list[str]
) -> None:
    # given
    costs = ["10.25", "0.5", "100", "9.75", "2", "1000.5", "0"]
    await insert_sessions(engine, *(session_row(total_cost_usd=Decimal(c)) for c in costs))
    query = """
    query Costs($after: String, $orderBy: SessionOrder) {
      sessions(first: 2, after: $after, orderBy: $orderBy) {
        pageInfo { hasNextPage endCursor }
        nodes { totalCostUsd }
      }
    }
    """

    # when: walked two at a time, so the cursors carry decimal values too
    seen: list[str] = []
    after: str | None = None
    while True:
        data = await gql(
            query, {"after": after, "orderBy": {"field": "TOTAL_COST_USD", "direction": direction}}
        )
        seen += [n["totalCostUsd"] for n in data["sessions"]["nodes"]]
        if not data["sessions"]["pageInfo"]["hasNextPage"]:
            break
        after = data["sessions"]["pageInfo"]["endCursor"]

    # then
    assert seen == expected


@pytest.mark.parametrize("direction", ["ASC", "DESC"])
async def test_walking_past_infinite_and_nan_durations_returns_each_session_once(
    gql: GraphQLClient, engine: AsyncEngine, direction: str
) -> None:
    # given: values no client can record, but another writer can store (SQLite keeps
    # NaN as NULL); the cursor after such a row must work like any other
    durations = [1.0, math.inf, -math.inf, math.nan, None, 2.0, math.inf, math.nan]
    rows = await insert_sessions(engine, *(session_row(duration_seconds=d) for d in durations))

    # when
    ids, _pages = await walk(
        gql, page_size=1, orderBy={"field": "DURATION_SECONDS", "direction": direction}
    )

    # then
    assert sorted(ids) == sorted(row["id"] for row in rows)
