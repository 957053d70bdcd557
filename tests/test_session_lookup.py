"""`session(id:)`: a full id or a unique prefix of it (SPEC 1.2)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import GraphQLClient, SqlRecorder, cost, insert_sessions, session_row

LOOKUP = "query ($id: String!) { session(id: $id) { id } }"


async def lookup(gql: GraphQLClient, id_or_prefix: str) -> str | None:
    """The id of the session ``session(id:)`` returns, None when it returns null."""
    data = await gql(LOOKUP, {"id": id_or_prefix})
    session = data["session"]
    return None if session is None else session["id"]


async def insert_ids(engine: AsyncEngine, *ids: str) -> None:
    await insert_sessions(engine, *(session_row(id=i) for i in ids))


# --- exact id and unique prefix -------------------------------------------------------------


async def test_full_id_returns_that_session(gql: GraphQLClient, engine: AsyncEngine) -> None:
    # given
    await insert_ids(
        engine,
        "3f2a9c10-5b7e-4d21-9a0c-1e2f3a4b5c6d",
        "3f2a9c11-0000-4000-8000-000000000000",
    )

    # when
    data = await gql('query { session(id: "3f2a9c10-5b7e-4d21-9a0c-1e2f3a4b5c6d") { id status } }')

    # then
    assert data == {
        "session": {"id": "3f2a9c10-5b7e-4d21-9a0c-1e2f3a4b5c6d", "status": "COMPLETED"}
    }


async def test_unique_prefix_returns_the_one_session_it_starts(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    await insert_ids(
        engine,
        "3f2a9c10-5b7e-4d21-9a0c-1e2f3a4b5c6d",
        "3f2a9c11-0000-4000-8000-000000000000",
        "7d000000-0000-4000-8000-000000000000",
    )

    # when / then
    assert await lookup(gql, "3f2a9c10") == "3f2a9c10-5b7e-4d21-9a0c-1e2f3a4b5c6d"
    assert await lookup(gql, "7") == "7d000000-0000-4000-8000-000000000000"


async def test_surrounding_whitespace_is_ignored(gql: GraphQLClient, engine: AsyncEngine) -> None:
    # given
    await insert_ids(engine, "3f2a9c10-5b7e-4d21-9a0c-1e2f3a4b5c6d")

    # when / then
    assert await lookup(gql, "  3f2a9c10\n") == "3f2a9c10-5b7e-4d21-9a0c-1e2f3a4b5c6d"


async def test_exact_id_wins_over_longer_ids_it_is_a_prefix_of(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given: "abcdef01" is a full id and a prefix of two others
    await insert_ids(engine, "abcdef01-tail", "abcdef01", "abcdef01-other")

    # when / then
    assert await lookup(gql, "abcdef01") == "abcdef01"
    assert await lookup(gql, "abcdef01-t") == "abcdef01-tail"


async def test_nothing_matching_is_null_without_error(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    await insert_ids(engine, "3f2a9c10-5b7e-4d21-9a0c-1e2f3a4b5c6d")

    # when
    body = await gql.raw(LOOKUP, {"id": "3f2a9c1f"})

    # then
    assert body == {"data": {"session": None}, "extensions": cost(1)}


async def test_empty_database_lookup_is_null(gql: GraphQLClient) -> None:
    # when
    body = await gql.raw(LOOKUP, {"id": "3f2a9c10"})

    # then
    assert body == {"data": {"session": None}, "extensions": cost(1)}


async def test_ids_are_case_sensitive(gql: GraphQLClient, engine: AsyncEngine) -> None:
    # given
    await insert_ids(engine, "3f2a9c10-5b7e-4d21-9a0c-1e2f3a4b5c6d")

    # when / then
    assert await lookup(gql, "3F2A9C10") is None
    assert await lookup(gql, "3F2A9C10-5B7E-4D21-9A0C-1E2F3A4B5C6D") is None
    assert await lookup(gql, "3f2a9c10") == "3f2a9c10-5b7e-4d21-9a0c-1e2f3a4b5c6d"


# --- ambiguous prefixes -----------------------------------------------------------------------


async def test_ambiguous_prefix_lists_candidates_in_id_order(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given: three ids starting "abcdef0", inserted out of order, and one that does not
    await insert_ids(
        engine,
        "abcdef03-3333-4000-8000-000000000003",
        "abcdef01-1111-4000-8000-000000000001",
        "abcdef1f-0000-4000-8000-000000000000",
        "abcdef02-2222-4000-8000-000000000002",
    )

    # when
    body = await gql.raw(LOOKUP, {"id": "abcdef0"})

    # then
    assert body["data"] == {"session": None}
    [error] = body["errors"]
    assert error["path"] == ["session"]
    assert error["extensions"] == {
        "code": "AMBIGUOUS_ID",
        "candidates": ["abcdef01-111", "abcdef02-222", "abcdef03-333"],
    }
    assert "'abcdef0'" in error["message"]
    assert "ambiguous" in error["message"]
    assert "longer prefix" in error["message"]


async def test_ambiguous_prefix_with_seven_matches_lists_the_first_five(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    ids = [f"feed{n:04d}-aaaa-4000-8000-{n:012d}" for n in (7, 3, 1, 6, 2, 5, 4)]
    await insert_ids(engine, *ids, "fee00000-0000-4000-8000-000000000000")

    # when
    error = await gql.error(LOOKUP, {"id": "feed"}, code="AMBIGUOUS_ID")

    # then
    assert error["extensions"]["candidates"] == [
        "feed0001-aaa",
        "feed0002-aaa",
        "feed0003-aaa",
        "feed0004-aaa",
        "feed0005-aaa",
    ]
    assert "longer prefix" in error["message"]


async def test_ambiguous_short_ids_are_listed_whole(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given: ids shorter than 12 characters are not padded or cut
    await insert_ids(engine, "abc-2", "abc-1")

    # when
    error = await gql.error(LOOKUP, {"id": "abc"}, code="AMBIGUOUS_ID")

    # then
    assert error["extensions"]["candidates"] == ["abc-1", "abc-2"]


# --- LIKE wildcards and escapes are plain characters ------------------------------------------

WILDCARD_IDS = ("abc%def", "abc_def", "abcXdef", "a\\b-1", "a\\c-2", "xyz")


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("abc%", "abc%def"),
        ("abc%def", "abc%def"),
        ("abc_", "abc_def"),
        ("abc_def", "abc_def"),
        ("abcX", "abcXdef"),
        ("a\\b", "a\\b-1"),
        ("a\\c-2", "a\\c-2"),
        ("%", None),
        ("_", None),
        ("\\", None),
        ("%def", None),
        ("_bc", None),
        ("abc%%", None),
        ("abc_X", None),
        ("a%", None),
        ("x_z", None),
        ("a\\%", None),
        ("a\\_", None),
    ],
)
async def test_wildcard_characters_are_literal(
    gql: GraphQLClient, engine: AsyncEngine, prefix: str, expected: str | None
) -> None:
    # given
    await insert_ids(engine, *WILDCARD_IDS)

    # when / then
    assert await lookup(gql, prefix) == expected


@pytest.mark.parametrize(
    ("prefix", "candidates"),
    [
        ("abc", ["abc%def", "abcXdef", "abc_def"]),
        ("a\\", ["a\\b-1", "a\\c-2"]),
    ],
)
async def test_wildcard_ids_sharing_a_literal_prefix_are_ambiguous(
    gql: GraphQLClient, engine: AsyncEngine, prefix: str, candidates: list[str]
) -> None:
    # given
    await insert_ids(engine, *WILDCARD_IDS)

    # when
    error = await gql.error(LOOKUP, {"id": prefix}, code="AMBIGUOUS_ID")

    # then: byte order ("%" < "X" < "_")
    assert error["extensions"]["candidates"] == candidates


async def test_backslash_in_an_inline_literal(gql: GraphQLClient, engine: AsyncEngine) -> None:
    # given
    await insert_ids(engine, *WILDCARD_IDS)

    # when: GraphQL "a\\b" is the two characters a, backslash, b
    data = await gql('query { session(id: "a\\\\b") { id } }')

    # then
    assert data == {"session": {"id": "a\\b-1"}}


# --- rejected and oversized input -------------------------------------------------------------


@pytest.mark.parametrize("blank", ["", " ", "   ", "\t", "\n\t  \r\n"])
async def test_empty_or_blank_id_is_bad_user_input(
    gql: GraphQLClient, engine: AsyncEngine, blank: str
) -> None:
    # given
    await insert_ids(engine, "3f2a9c10-5b7e-4d21-9a0c-1e2f3a4b5c6d")

    # when
    body = await gql.raw(LOOKUP, {"id": blank})

    # then
    assert body["data"] == {"session": None}
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["path"] == ["session"]


async def test_empty_id_inline_literal_is_bad_user_input(gql: GraphQLClient) -> None:
    # when
    error = await gql.error('query { session(id: "") { id } }', code="BAD_USER_INPUT")

    # then
    assert error["path"] == ["session"]


@pytest.mark.parametrize(
    "prefix",
    [
        "\x00",
        "3f2a\x00",
        "3f2a9c10\x00-5b7e",
        "3f2a\x07",
        "3f2a\x1b[0m",
        "3f2a\x7f",
        "3f\u200b2a",
        "3f2a\ufeff",
        "3f\t2a",
    ],
)
async def test_non_printable_characters_are_bad_user_input(
    gql: GraphQLClient, engine: AsyncEngine, prefix: str
) -> None:
    # given: a session the prefix would match if the odd character were dropped
    await insert_ids(engine, "3f2a9c10-5b7e-4d21-9a0c-1e2f3a4b5c6d")

    # when
    body = await gql.raw(LOOKUP, {"id": prefix})

    # then
    assert body["data"] == {"session": None}
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["path"] == ["session"]


async def test_id_of_128_characters_is_found_and_longer_is_null(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    longest = "a" * 120 + "-1234567"
    assert len(longest) == 128
    await insert_ids(engine, longest)

    # when / then
    assert await lookup(gql, longest) == longest
    assert await lookup(gql, longest + "8") is None
    assert await lookup(gql, "a" * 129) is None


async def test_very_long_id_is_null_without_error(gql: GraphQLClient, engine: AsyncEngine) -> None:
    # given
    await insert_ids(engine, "3f2a9c10-5b7e-4d21-9a0c-1e2f3a4b5c6d")

    # when
    body = await gql.raw(LOOKUP, {"id": "3f2a9c10-5b7e-4d21-9a0c-1e2f3a4b5c6d" + "0" * 10_000})

    # then
    assert body == {"data": {"session": None}, "extensions": cost(1)}


# --- one statement, on the primary key --------------------------------------------------------


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    ("wanted", "outcome"),
    [
        ("3f2a9c10-5b7e-4d21-9a0c-1e2f3a4b5c6d", "found"),
        ("3f2a9c10", "found"),
        ("3f2a", "ambiguous"),
        ("ffff", "missing"),
        ("abc%", "missing"),
    ],
)
async def test_lookup_is_one_statement_searching_the_primary_key(
    gql: GraphQLClient, engine: AsyncEngine, sql: SqlRecorder, wanted: str, outcome: str
) -> None:
    # given: enough rows that SQLite's planner has a real choice
    await insert_sessions(
        engine,
        session_row(id="3f2a9c10-5b7e-4d21-9a0c-1e2f3a4b5c6d"),
        session_row(id="3f2a9c11-0000-4000-8000-000000000000"),
        *(session_row(id=f"{n:08x}-0000-4000-8000-000000000000") for n in range(1, 200)),
    )
    executed: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        executed.append((statement, parameters))

    sa.event.listen(engine.sync_engine, "before_cursor_execute", capture)
    sql.clear()

    # when
    try:
        body = await gql.raw(LOOKUP, {"id": wanted})
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", capture)

    # then: the lookup itself behaved
    if outcome == "found":
        assert body == {
            "data": {"session": {"id": "3f2a9c10-5b7e-4d21-9a0c-1e2f3a4b5c6d"}},
            "extensions": cost(1),
        }
    elif outcome == "missing":
        assert body == {"data": {"session": None}, "extensions": cost(1)}
    else:
        assert body["errors"][0]["extensions"]["code"] == "AMBIGUOUS_ID"

    # and it ran exactly one statement, without LIKE
    assert len(sql.statements) == 1, sql.report()
    [(statement, parameters)] = executed
    assert statement == sql.statements[0]
    assert " LIKE " not in statement.upper()
    assert "sessions" in statement

    # and SQLite plans it as a search of the primary-key index, not a scan
    async with engine.connect() as conn:
        plan = (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)).all()
    details = [row[-1] for row in plan]
    assert any(
        d.startswith("SEARCH sessions USING INDEX sqlite_autoindex_sessions_1 (") for d in details
    ), details
    assert not any(d.startswith("SCAN") for d in details), details
