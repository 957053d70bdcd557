"""Values a hostile or careless writer can put in the database or a cursor never fail a request."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from sessiongraph.db.queries import Keyset
from sessiongraph.graphql.cursors import CursorCodec
from tests.helpers import GraphQLClient, insert_operations, insert_session, operation_row


@pytest.mark.parametrize(
    "count",
    [
        "--5",
        "²",
        "1.5",
        "1e3",
        [],
        {"n": 1},
        1e300,
        # Only SQLite's JSON text can hold a NaN; PostgreSQL's JSONB refuses it.
        pytest.param(float("nan"), id="nan", marks=pytest.mark.sqlite_only),
    ],
)
async def test_unreadable_git_count_reads_as_null(
    gql: GraphQLClient, engine: AsyncEngine, count: object
) -> None:
    session = await insert_session(engine)
    await insert_operations(
        engine, operation_row(session["id"], git={"sha": "abc", "files_changed": count})
    )

    data = await gql(
        "query ($id: String!) { session(id: $id) "
        "{ operations { nodes { git { sha filesChanged } } } } }",
        {"id": session["id"]},
    )

    assert data["session"]["operations"]["nodes"] == [{"git": {"sha": "abc", "filesChanged": None}}]


async def test_signed_cursor_past_nulls_of_a_column_without_nulls_gives_an_empty_page(
    gql: GraphQLClient, engine: AsyncEngine, app: Starlette
) -> None:
    # Given a cursor signed with the server's own key, but one the server never hands out
    await insert_session(engine, total_tokens=5)
    codec = CursorCodec(app.state.settings.cursor_secret)
    cursor = codec.encode("sessions:TOTAL_TOKENS:DESC", Keyset(None, "zzzz"))

    data = await gql(
        "query ($after: String) { sessions(after: $after, orderBy: {field: TOTAL_TOKENS}) "
        "{ nodes { id } pageInfo { hasNextPage } } }",
        {"after": cursor},
    )

    assert data["sessions"] == {"nodes": [], "pageInfo": {"hasNextPage": False}}


async def test_time_bounds_before_year_1000_compare_as_times(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    old = await insert_session(engine, started_at=datetime(999, 6, 1, tzinfo=UTC))
    new = await insert_session(engine, started_at=datetime(2026, 4, 18, tzinfo=UTC))
    query = (
        "query ($a: DateTime, $b: DateTime) "
        "{ sessions(startedAfter: $a, startedBefore: $b) { nodes { id } } }"
    )

    after = await gql(query, {"a": "0999-01-01T00:00:00Z"})
    before = await gql(query, {"b": "0500-01-01T00:00:00Z"})
    between = await gql(query, {"a": "0999-01-01T00:00:00Z", "b": "1000-01-01T00:00:00Z"})

    assert [n["id"] for n in after["sessions"]["nodes"]] == [new["id"], old["id"]]
    assert before["sessions"]["nodes"] == []
    assert [n["id"] for n in between["sessions"]["nodes"]] == [old["id"]]
