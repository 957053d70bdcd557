"""The nested `Session.operations` connection: order, pages, filters, limits, robust reading."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from sessiongraph.db.tables import operations
from tests.helpers import (
    T0,
    GraphQLClient,
    cost,
    insert_operations,
    insert_session,
    insert_timeline,
    operation_row,
)

OPERATIONS_PAGE = """
query Ops(
  $id: String!, $first: Int, $after: String,
  $types: [String!], $toolName: String, $success: Boolean
) {
  session(id: $id) {
    operationCount
    operations(
      first: $first, after: $after, types: $types, toolName: $toolName, success: $success
    ) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { cursor node { operationId sessionId } }
    }
  }
}
"""


#: Error cases select only the failing field (siblings: see test_error_next_to_fields_...).
OPERATIONS_ERROR = """
query Ops($id: String!, $first: Int, $after: String) {
  session(id: $id) {
    operations(first: $first, after: $after) { nodes { operationId } }
  }
}
"""


async def operations_page(gql: GraphQLClient, session_id: str, **arguments: Any) -> dict[str, Any]:
    data = await gql(OPERATIONS_PAGE, {"id": session_id, **arguments})
    session: dict[str, Any] = data["session"]
    return session


def operation_ids(connection: dict[str, Any]) -> list[str]:
    return [edge["node"]["operationId"] for edge in connection["edges"]]


async def insert_mixed_timeline(engine: AsyncEngine, session_id: str) -> list[str]:
    """Nine operations recorded out of time order; the operation ids in timeline order.

    Ties on the timestamp go by recording order (not by operation id); NULL
    timestamps come last, also in recording order.
    """
    recorded = [
        ("op-a", T0 + timedelta(seconds=2)),
        ("op-b", None),
        ("op-c", T0),
        ("op-z", T0 + timedelta(seconds=1)),
        ("op-e", T0 + timedelta(seconds=1)),
        ("op-f", None),
        ("op-d", T0 + timedelta(seconds=1)),
        ("op-h", T0 + timedelta(microseconds=500_000)),
        ("op-g", None),
    ]
    for operation_id, timestamp in recorded:  # one insert each: recording order is certain
        await insert_operations(
            engine, operation_row(session_id, operation_id=operation_id, timestamp=timestamp)
        )
    return ["op-c", "op-h", "op-z", "op-e", "op-d", "op-a", "op-b", "op-f", "op-g"]


async def test_operations_come_oldest_first_ties_by_recording_order_nulls_last(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    session = await insert_session(engine)
    expected = await insert_mixed_timeline(engine, session["id"])

    # when
    data = await gql(
        """
        query ($id: String!) {
          session(id: $id) { operations { nodes { operationId timestamp } } }
        }
        """,
        {"id": session["id"]},
    )

    # then
    nodes = data["session"]["operations"]["nodes"]
    assert [n["operationId"] for n in nodes] == expected
    assert [n["timestamp"] for n in nodes] == [
        "2026-04-18T08:00:00+00:00",
        "2026-04-18T08:00:00.500000+00:00",
        "2026-04-18T08:00:01+00:00",
        "2026-04-18T08:00:01+00:00",
        "2026-04-18T08:00:01+00:00",
        "2026-04-18T08:00:02+00:00",
        None,
        None,
        None,
    ]


async def test_walking_operations_two_at_a_time_returns_each_once_in_order(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    session = await insert_session(engine)
    expected = await insert_mixed_timeline(engine, session["id"])
    other = await insert_session(engine)
    await insert_timeline(engine, other["id"], 3)

    # when
    seen: list[str] = []
    pages: list[dict[str, Any]] = []
    after: str | None = None
    while len(pages) < 20:
        page = await operations_page(gql, session["id"], first=2, after=after)
        connection = page["operations"]
        pages.append(connection)
        seen += operation_ids(connection)
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]

    # then: the walk crosses from dated to undated and continues after an undated cursor
    assert seen == expected
    assert [operation_ids(p) for p in pages] == [
        ["op-c", "op-h"],
        ["op-z", "op-e"],
        ["op-d", "op-a"],
        ["op-b", "op-f"],
        ["op-g"],
    ]
    assert [p["pageInfo"]["hasPreviousPage"] for p in pages] == [False, True, True, True, True]
    assert [p["pageInfo"]["hasNextPage"] for p in pages] == [True, True, True, True, False]
    for connection in pages:
        edges = connection["edges"]
        assert connection["pageInfo"]["startCursor"] == edges[0]["cursor"]
        assert connection["pageInfo"]["endCursor"] == edges[-1]["cursor"]
        assert connection["totalCount"] == 9
        assert {e["node"]["sessionId"] for e in edges} == {session["id"]}


async def test_page_after_the_last_operation_is_empty(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    session = await insert_session(engine)
    await insert_timeline(engine, session["id"], 4)
    first = await operations_page(gql, session["id"], first=4)
    assert first["operations"]["pageInfo"]["hasNextPage"] is False

    # when
    page = await operations_page(
        gql, session["id"], first=4, after=first["operations"]["pageInfo"]["endCursor"]
    )

    # then
    assert page["operations"] == {
        "totalCount": 4,
        "pageInfo": {
            "hasNextPage": False,
            "hasPreviousPage": True,
            "startCursor": None,
            "endCursor": None,
        },
        "edges": [],
    }


async def insert_filter_sample(engine: AsyncEngine) -> str:
    """Seven operations of one session, plus look-alikes in another session."""
    session = await insert_session(engine)
    sample = [
        ("o1", "tool_execution_started", "Bash", True),
        ("o2", "tool_execution_completed", "Bash", True),
        ("o3", "tool_execution_failed", "Bash", False),
        ("o4", "tool_execution_started", "Edit", True),
        ("o5", "tool_execution_completed", "Edit", False),
        ("o6", "git_commit", None, True),
        ("o7", "message_response", None, True),
    ]
    await insert_operations(
        engine,
        *(
            operation_row(
                session["id"],
                operation_id=operation_id,
                operation_type=operation_type,
                tool_name=tool_name,
                success=success,
                timestamp=T0 + timedelta(seconds=i),
            )
            for i, (operation_id, operation_type, tool_name, success) in enumerate(sample)
        ),
    )
    other = await insert_session(engine)
    await insert_timeline(engine, other["id"], 3, tool_name="Bash", operation_type="git_commit")
    session_id: str = session["id"]
    return session_id


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        pytest.param({}, ["o1", "o2", "o3", "o4", "o5", "o6", "o7"], id="no-filter"),
        pytest.param(
            {"types": []}, ["o1", "o2", "o3", "o4", "o5", "o6", "o7"], id="empty-types-no-filter"
        ),
        pytest.param(
            {"types": None}, ["o1", "o2", "o3", "o4", "o5", "o6", "o7"], id="null-types-no-filter"
        ),
        pytest.param({"types": ["git_commit"]}, ["o6"], id="one-type"),
        pytest.param(
            {"types": ["tool_execution_started", "tool_execution_completed"]},
            ["o1", "o2", "o4", "o5"],
            id="types-in",
        ),
        pytest.param({"types": ["git_commit", "git_commit"]}, ["o6"], id="repeated-type"),
        pytest.param({"types": ["never_recorded"]}, [], id="unknown-type"),
        pytest.param({"toolName": "Bash"}, ["o1", "o2", "o3"], id="tool-name"),
        pytest.param({"toolName": "Grep"}, [], id="tool-name-absent"),
        pytest.param({"success": False}, ["o3", "o5"], id="failed"),
        pytest.param({"success": True}, ["o1", "o2", "o4", "o6", "o7"], id="succeeded"),
        pytest.param({"toolName": "Bash", "success": True}, ["o1", "o2"], id="tool-and-success"),
        pytest.param(
            {
                "types": ["tool_execution_started", "tool_execution_completed"],
                "toolName": "Edit",
                "success": False,
            },
            ["o5"],
            id="all-three",
        ),
        pytest.param(
            {"types": ["git_commit", "message_response"], "success": True},
            ["o6", "o7"],
            id="types-and-success",
        ),
    ],
)
async def test_operation_filters(
    gql: GraphQLClient, engine: AsyncEngine, arguments: dict[str, Any], expected: list[str]
) -> None:
    # given
    session_id = await insert_filter_sample(engine)

    # when
    page = await operations_page(gql, session_id, **arguments)

    # then: totalCount counts the filtered operations, operationCount all of them
    assert operation_ids(page["operations"]) == expected
    assert page["operations"]["totalCount"] == len(expected)
    assert page["operations"]["pageInfo"]["hasNextPage"] is False
    assert page["operationCount"] == 7


async def test_walking_filtered_operations_one_at_a_time(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    session_id = await insert_filter_sample(engine)

    # when
    seen: list[str] = []
    after: str | None = None
    totals: list[int] = []
    for _ in range(10):
        page = await operations_page(
            gql, session_id, first=1, after=after, toolName="Bash", success=True
        )
        seen += operation_ids(page["operations"])
        totals.append(page["operations"]["totalCount"])
        if not page["operations"]["pageInfo"]["hasNextPage"]:
            break
        after = page["operations"]["pageInfo"]["endCursor"]

    # then
    assert seen == ["o1", "o2"]
    assert totals == [2, 2]


@pytest.mark.parametrize("first", [0, 1001, -1])
async def test_first_out_of_range_is_bad_user_input(
    gql: GraphQLClient, engine: AsyncEngine, first: int
) -> None:
    # given
    session = await insert_session(engine)
    await insert_timeline(engine, session["id"], 2)

    # when
    error = await gql.error(
        OPERATIONS_ERROR, {"id": session["id"], "first": first}, code="BAD_USER_INPUT"
    )

    # then
    assert error["path"] == ["session", "operations"]
    assert error["extensions"]["argumentName"] == "first"
    assert "1000" in error["message"]


async def test_error_next_to_fields_that_load_data_answers_and_settles(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    """The error cancels the sibling loads (operationCount, totalCount, another page).

    Their statements must still settle, or closing the app after the test hangs.
    """
    # given
    session = await insert_session(engine)
    await insert_timeline(engine, session["id"], 3)

    # when
    body = await gql.raw(
        """
        query ($id: String!) {
          session(id: $id) {
            operationCount
            ok: operations(first: 2) { totalCount nodes { operationId } }
            bad: operations(first: 0) { totalCount nodes { operationId } }
          }
        }
        """,
        {"id": session["id"]},
    )

    # then
    assert body["data"] == {"session": None}
    assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
        (["session", "bad"], "BAD_USER_INPUT")
    ]


async def test_first_1000_is_accepted_and_the_default_is_100(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    session = await insert_session(engine)
    await insert_timeline(engine, session["id"], 1001)
    query = """
    query ($id: String!) {
      session(id: $id) {
        byDefault: operations { totalCount pageInfo { hasNextPage } nodes { operationId } }
        most: operations(first: 1000) {
          pageInfo { hasNextPage endCursor } nodes { operationId }
        }
      }
    }
    """

    # when
    data = await gql(query, {"id": session["id"]})
    rest = await operations_page(
        gql, session["id"], first=1000, after=data["session"]["most"]["pageInfo"]["endCursor"]
    )

    # then
    by_default = data["session"]["byDefault"]
    assert len(by_default["nodes"]) == 100
    assert by_default["pageInfo"]["hasNextPage"] is True
    assert by_default["totalCount"] == 1001
    most = data["session"]["most"]
    assert len(most["nodes"]) == 1000
    assert most["pageInfo"]["hasNextPage"] is True
    assert len(rest["operations"]["edges"]) == 1
    assert rest["operations"]["pageInfo"]["hasNextPage"] is False
    walked = [n["operationId"] for n in most["nodes"]] + operation_ids(rest["operations"])
    assert len(set(walked)) == 1001


async def test_explicit_null_first_means_the_default(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    session = await insert_session(engine)
    await insert_timeline(engine, session["id"], 101)

    # when
    page = await operations_page(gql, session["id"], first=None)

    # then
    assert len(page["operations"]["edges"]) == 100
    assert page["operations"]["pageInfo"]["hasNextPage"] is True


@pytest.mark.parametrize(
    "after",
    [
        pytest.param("garbage", id="not-a-cursor"),
        pytest.param("", id="empty"),
        pytest.param("abc.def", id="unsigned"),
        pytest.param("x" * 5000, id="huge"),
    ],
)
async def test_bad_after_is_bad_user_input(
    gql: GraphQLClient, engine: AsyncEngine, after: str
) -> None:
    # given
    session = await insert_session(engine)
    await insert_timeline(engine, session["id"], 2)

    # when
    error = await gql.error(
        OPERATIONS_ERROR, {"id": session["id"], "after": after}, code="BAD_USER_INPUT"
    )

    # then
    assert error["path"] == ["session", "operations"]
    assert error["extensions"]["argumentName"] == "after"


async def test_tampered_operations_cursor_is_bad_user_input(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    session = await insert_session(engine)
    await insert_timeline(engine, session["id"], 3)
    page = await operations_page(gql, session["id"], first=1)
    cursor: str = page["operations"]["pageInfo"]["endCursor"]
    body, signature = cursor.split(".")
    tampered = f"{body[:-1]}{'A' if body[-1] != 'A' else 'B'}.{signature}"

    # when / then
    await gql.error(
        OPERATIONS_ERROR, {"id": session["id"], "after": tampered}, code="BAD_USER_INPUT"
    )


async def test_sessions_cursor_passed_to_operations_is_bad_user_input(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    session = await insert_session(engine)
    await insert_timeline(engine, session["id"], 2)
    data = await gql("{ sessions(first: 1) { pageInfo { endCursor } } }")
    sessions_cursor = data["sessions"]["pageInfo"]["endCursor"]
    assert sessions_cursor is not None

    # when
    error = await gql.error(
        OPERATIONS_ERROR, {"id": session["id"], "after": sessions_cursor}, code="BAD_USER_INPUT"
    )

    # then
    assert error["path"] == ["session", "operations"]


async def test_operations_cursor_passed_to_sessions_is_bad_user_input(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    session = await insert_session(engine)
    await insert_timeline(engine, session["id"], 2)
    page = await operations_page(gql, session["id"], first=1)

    # when
    error = await gql.error(
        "query ($after: String) { sessions(after: $after) { nodes { id } } }",
        {"after": page["operations"]["pageInfo"]["endCursor"]},
        code="BAD_USER_INPUT",
    )

    # then
    assert error["path"] == ["sessions"]


async def test_each_session_of_a_list_gets_its_own_page(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given: started newest to oldest, with 0, 2 and 5 operations
    empty = await insert_session(engine, started_at=T0 + timedelta(hours=3))
    two = await insert_session(engine, started_at=T0 + timedelta(hours=2))
    five = await insert_session(engine, started_at=T0 + timedelta(hours=1))
    two_ops = await insert_timeline(engine, two["id"], 2)
    five_ops = await insert_timeline(engine, five["id"], 5)

    # when
    data = await gql(
        """
        {
          sessions {
            nodes {
              id
              operationCount
              operations(first: 3) {
                totalCount
                pageInfo { hasNextPage hasPreviousPage }
                nodes { operationId sessionId }
              }
            }
          }
        }
        """
    )

    # then
    assert data["sessions"]["nodes"] == [
        {
            "id": empty["id"],
            "operationCount": 0,
            "operations": {
                "totalCount": 0,
                "pageInfo": {"hasNextPage": False, "hasPreviousPage": False},
                "nodes": [],
            },
        },
        {
            "id": two["id"],
            "operationCount": 2,
            "operations": {
                "totalCount": 2,
                "pageInfo": {"hasNextPage": False, "hasPreviousPage": False},
                "nodes": [
                    {"operationId": op["operation_id"], "sessionId": two["id"]} for op in two_ops
                ],
            },
        },
        {
            "id": five["id"],
            "operationCount": 5,
            "operations": {
                "totalCount": 5,
                "pageInfo": {"hasNextPage": True, "hasPreviousPage": False},
                "nodes": [
                    {"operationId": op["operation_id"], "sessionId": five["id"]}
                    for op in five_ops[:3]
                ],
            },
        },
    ]


async def test_aliases_with_different_arguments_answer_separately(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    session = await insert_session(engine)
    await insert_operations(
        engine,
        operation_row(
            session["id"],
            operation_id="started",
            operation_type="tool_execution_started",
            tool_name="Bash",
            tool_input={"command": "ls"},
            timestamp=T0,
        ),
        operation_row(
            session["id"],
            operation_id="commit",
            operation_type="git_commit",
            git={"sha": "abc123", "branch": "main"},
            timestamp=T0 + timedelta(seconds=1),
        ),
        operation_row(
            session["id"],
            operation_id="push",
            operation_type="git_push",
            git={"sha": "abc123", "remote": "origin"},
            timestamp=T0 + timedelta(seconds=2),
        ),
    )

    # when
    data = await gql(
        """
        query ($id: String!) {
          session(id: $id) {
            a: operations(first: 1) {
              totalCount
              pageInfo { hasNextPage }
              nodes { operationId toolInput }
            }
            b: operations(types: ["git_commit"]) {
              totalCount
              pageInfo { hasNextPage }
              nodes { operationId git { sha branch } }
            }
            c: operations(types: ["git_push", "git_commit"], first: 1) {
              totalCount
              pageInfo { hasNextPage }
              edges { node { operationId gitSha } }
            }
          }
        }
        """,
        {"id": session["id"]},
    )

    # then
    assert data["session"] == {
        "a": {
            "totalCount": 3,
            "pageInfo": {"hasNextPage": True},
            "nodes": [{"operationId": "started", "toolInput": {"command": "ls"}}],
        },
        "b": {
            "totalCount": 1,
            "pageInfo": {"hasNextPage": False},
            "nodes": [{"operationId": "commit", "git": {"sha": "abc123", "branch": "main"}}],
        },
        "c": {
            "totalCount": 2,
            "pageInfo": {"hasNextPage": True},
            "edges": [{"node": {"operationId": "commit", "gitSha": "abc123"}}],
        },
    }


GIT_QUERY = """
query ($id: String!) {
  session(id: $id) {
    operations {
      nodes {
        operationId
        gitSha gitMessage gitBranch gitRepo
        git {
          operation sha branch repo message prevBranch isClone remote author
          filesChanged insertions deletions commitsCount commitRange remoteUrl
          details fromBranch toBranch estimatedTokensAdded estimatedTokensRemoved
        }
      }
    }
  }
}
"""

NO_GIT = {
    "operation": None,
    "sha": None,
    "branch": None,
    "repo": None,
    "message": None,
    "prevBranch": None,
    "isClone": None,
    "remote": None,
    "author": None,
    "filesChanged": None,
    "insertions": None,
    "deletions": None,
    "commitsCount": None,
    "commitRange": None,
    "remoteUrl": None,
    "details": None,
    "fromBranch": None,
    "toBranch": None,
    "estimatedTokensAdded": None,
    "estimatedTokensRemoved": None,
}


async def test_git_with_unknown_extra_keys_reads_fine(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    session = await insert_session(engine)
    await insert_operations(
        engine,
        operation_row(
            session["id"],
            operation_id="future",
            operation_type="git_commit",
            git={"sha": "abc", "future_key": 1, "nested": {"x": 1}},
            timestamp=T0,
        ),
        operation_row(
            session["id"],
            operation_id="plain",
            operation_type="git_commit",
            git={"sha": "def", "branch": "main", "repo": "acme/foo", "message": "Fix"},
            timestamp=T0 + timedelta(seconds=1),
        ),
    )

    # when
    data = await gql(GIT_QUERY, {"id": session["id"]})

    # then: the other operation of the session is not lost either
    assert data["session"]["operations"]["nodes"] == [
        {
            "operationId": "future",
            "gitSha": "abc",
            "gitMessage": None,
            "gitBranch": None,
            "gitRepo": None,
            "git": {**NO_GIT, "sha": "abc"},
        },
        {
            "operationId": "plain",
            "gitSha": "def",
            "gitMessage": "Fix",
            "gitBranch": "main",
            "gitRepo": "acme/foo",
            "git": {**NO_GIT, "sha": "def", "branch": "main", "repo": "acme/foo", "message": "Fix"},
        },
    ]


async def test_git_values_of_the_wrong_type_do_not_break_the_operation(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    session = await insert_session(engine)
    await insert_operations(
        engine,
        operation_row(
            session["id"],
            operation_id="odd",
            operation_type="git_commit",
            git={
                "sha": "abc",
                "files_changed": "12",
                "insertions": "many",
                "is_clone": "yes",
                "deletions": 4,
                "estimated_tokens_added": 2**40,
            },
        ),
    )

    # when
    data = await gql(GIT_QUERY, {"id": session["id"]})

    # then
    assert data["session"]["operations"]["nodes"] == [
        {
            "operationId": "odd",
            "gitSha": "abc",
            "gitMessage": None,
            "gitBranch": None,
            "gitRepo": None,
            "git": {
                **NO_GIT,
                "sha": "abc",
                "filesChanged": 12,
                "insertions": None,
                "isClone": None,
                "deletions": 4,
                "estimatedTokensAdded": None,
            },
        }
    ]


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param(["not", "an", "object"], id="list"),
        pytest.param("just text", id="string"),
        pytest.param(42, id="number"),
    ],
)
async def test_git_that_is_not_an_object_reads_as_null(
    gql: GraphQLClient, engine: AsyncEngine, stored: Any
) -> None:
    # given
    session = await insert_session(engine)
    await insert_operations(engine, operation_row(session["id"], operation_id="op", git=stored))

    # when
    data = await gql(GIT_QUERY, {"id": session["id"]})

    # then
    assert data["session"]["operations"]["nodes"] == [
        {
            "operationId": "op",
            "gitSha": None,
            "gitMessage": None,
            "gitBranch": None,
            "gitRepo": None,
            "git": None,
        }
    ]


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        pytest.param({"command": "ls -la"}, {"command": "ls -la"}, id="object-as-is"),
        pytest.param(
            {"nested": {"list": [1, 2]}, "n": None},
            {"nested": {"list": [1, 2]}, "n": None},
            id="nested-object-as-is",
        ),
        pytest.param({}, {}, id="empty-object"),
        pytest.param("ls -la | head", {"raw": "ls -la | head"}, id="string-raw"),
        pytest.param(["a", 1, None], {"raw": json.dumps(["a", 1, None])}, id="list-raw-json"),
        pytest.param(42, {"raw": "42"}, id="number-raw-json"),
        pytest.param(None, None, id="null"),
    ],
)
async def test_tool_input_is_always_an_object(
    gql: GraphQLClient, engine: AsyncEngine, stored: Any, expected: dict[str, Any] | None
) -> None:
    # given
    session = await insert_session(engine)
    await insert_operations(
        engine, operation_row(session["id"], operation_id="op", tool_input=stored)
    )

    # when
    data = await gql(
        "query ($id: String!) { session(id: $id) { operations { nodes { toolInput } } } }",
        {"id": session["id"]},
    )

    # then
    assert data["session"]["operations"]["nodes"] == [{"toolInput": expected}]


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    ("column", "field", "expected"),
    [
        pytest.param("tool_input", "toolInput", {"raw": "ls -la"}, id="tool-input-as-raw"),
        pytest.param("git", "git { sha }", None, id="git-as-null"),
    ],
)
async def test_stored_text_that_is_not_json_does_not_break_the_session(
    gql: GraphQLClient, engine: AsyncEngine, column: str, field: str, expected: Any
) -> None:
    """A JSON column holding plain text (legacy rows written by another process).

    SQLite stores JSON as text, so such rows exist; PostgreSQL's JSONB refuses them.
    """
    # given
    session = await insert_session(engine)
    await insert_operations(
        engine,
        operation_row(session["id"], operation_id="legacy", timestamp=T0),
        operation_row(session["id"], operation_id="fine", timestamp=T0 + timedelta(seconds=1)),
    )
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(operations)
            .where(operations.c.operation_id == "legacy")
            .values({column: sa.literal_column("'ls -la'")})
        )

    # when
    body = await gql.raw(
        f"query ($id: String!) {{ session(id: $id) {{ operations {{ nodes {{ "
        f"operationId {field} }} }} }} }}",
        {"id": session["id"]},
    )

    # then
    key = field.split()[0]
    assert body == {
        "data": {
            "session": {
                "operations": {
                    "nodes": [
                        {"operationId": "legacy", key: expected},
                        {"operationId": "fine", key: None},
                    ]
                }
            }
        },
        "extensions": cost(101),
    }


async def test_list_tool_input_keeps_its_json_text(gql: GraphQLClient, engine: AsyncEngine) -> None:
    # given
    session = await insert_session(engine)
    await insert_operations(
        engine, operation_row(session["id"], tool_input=[{"path": "a.py"}, "b"])
    )

    # when
    data = await gql(
        "query ($id: String!) { session(id: $id) { operations { nodes { toolInput } } } }",
        {"id": session["id"]},
    )

    # then
    raw = data["session"]["operations"]["nodes"][0]["toolInput"]["raw"]
    assert json.loads(raw) == [{"path": "a.py"}, "b"]


ALL_OPERATION_FIELDS = """
query ($id: String!) {
  session(id: $id) {
    operations {
      nodes {
        operationId sessionId operationType timestamp durationSeconds success
        inputTokens outputTokens totalTokens toolName toolUseId toolInput toolOutput
        messageRole messageContent thinkingContent git { sha }
        gitSha gitMessage gitBranch gitRepo
      }
    }
  }
}
"""


async def test_operation_with_only_required_columns_reads_as_nulls_and_success(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given: a row that names only the required columns
    session = await insert_session(engine)
    async with engine.begin() as conn:
        await conn.execute(
            operations.insert(),
            [{"operation_id": "bare", "session_id": session["id"], "operation_type": "thinking"}],
        )

    # when
    data = await gql(ALL_OPERATION_FIELDS, {"id": session["id"]})

    # then
    assert data["session"]["operations"]["nodes"] == [
        {
            "operationId": "bare",
            "sessionId": session["id"],
            "operationType": "thinking",
            "timestamp": None,
            "durationSeconds": None,
            "success": True,
            "inputTokens": None,
            "outputTokens": None,
            "totalTokens": None,
            "toolName": None,
            "toolUseId": None,
            "toolInput": None,
            "toolOutput": None,
            "messageRole": None,
            "messageContent": None,
            "thinkingContent": None,
            "git": None,
            "gitSha": None,
            "gitMessage": None,
            "gitBranch": None,
            "gitRepo": None,
        }
    ]


async def test_operation_with_every_column_set_reads_back(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    session = await insert_session(engine)
    await insert_operations(
        engine,
        operation_row(
            session["id"],
            operation_id="full",
            operation_type="tool_execution_completed",
            timestamp=T0,
            duration_seconds=1.5,
            success=False,
            input_tokens=10,
            output_tokens=20,
            total_tokens=30,
            tool_name="Bash",
            tool_use_id="toolu_1",
            tool_input={"command": "pytest"},
            tool_output="1 failed",
            message_role="assistant",
            message_content="Running tests",
            thinking_content="Hmm",
            git={"sha": "abc", "message": "m", "branch": "b", "repo": "acme/foo"},
        ),
    )

    # when
    data = await gql(ALL_OPERATION_FIELDS, {"id": session["id"]})

    # then
    assert data["session"]["operations"]["nodes"] == [
        {
            "operationId": "full",
            "sessionId": session["id"],
            "operationType": "tool_execution_completed",
            "timestamp": "2026-04-18T08:00:00+00:00",
            "durationSeconds": 1.5,
            "success": False,
            "inputTokens": 10,
            "outputTokens": 20,
            "totalTokens": 30,
            "toolName": "Bash",
            "toolUseId": "toolu_1",
            "toolInput": {"command": "pytest"},
            "toolOutput": "1 failed",
            "messageRole": "assistant",
            "messageContent": "Running tests",
            "thinkingContent": "Hmm",
            "git": {"sha": "abc"},
            "gitSha": "abc",
            "gitMessage": "m",
            "gitBranch": "b",
            "gitRepo": "acme/foo",
        }
    ]


SESSION_JSON_FIELDS = """
query ($id: String!) {
  session(id: $id) {
    metadata repos reposDisplay
    costByModel { model costUsd }
    operationCount
    operations { totalCount nodes { operationId } }
  }
}
"""


async def test_session_with_empty_metadata_repos_and_costs_reads_fine(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    session = await insert_session(engine, metadata={}, repos=[], cost_by_model={})

    # when
    data = await gql(SESSION_JSON_FIELDS, {"id": session["id"]})

    # then
    assert data["session"] == {
        "metadata": {},
        "repos": [],
        "reposDisplay": None,
        "costByModel": [],
        "operationCount": 0,
        "operations": {"totalCount": 0, "nodes": []},
    }


async def test_session_with_json_null_metadata_repos_and_costs_reads_as_empty(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given: the JSON document `null` (not SQL NULL, which the columns refuse)
    session = await insert_session(
        engine, metadata=sa.JSON.NULL, repos=sa.JSON.NULL, cost_by_model=sa.JSON.NULL
    )

    # when
    data = await gql(SESSION_JSON_FIELDS, {"id": session["id"]})

    # then
    assert data["session"] == {
        "metadata": {},
        "repos": [],
        "reposDisplay": None,
        "costByModel": [],
        "operationCount": 0,
        "operations": {"totalCount": 0, "nodes": []},
    }


async def test_session_metadata_is_returned_as_stored(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    metadata = {"trigger": "manual", "attempt": 2, "tags": ["a", "b"], "nested": {"ok": True}}
    session = await insert_session(engine, metadata=metadata, repos=["acme/foo", "acme/bar"])

    # when
    data = await gql(SESSION_JSON_FIELDS, {"id": session["id"]})

    # then
    assert data["session"]["metadata"] == metadata
    assert data["session"]["repos"] == ["acme/foo", "acme/bar"]
    assert data["session"]["reposDisplay"] == "foo +1"


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        pytest.param(
            {"claude-haiku-4-5": "0.0100", "claude-sonnet-4-6": "1.25"},
            [
                {"model": "claude-sonnet-4-6", "costUsd": "1.25"},
                {"model": "claude-haiku-4-5", "costUsd": "0.01"},
            ],
            id="most-expensive-first",
        ),
        pytest.param(
            {"claude-sonnet-4-6": "9.5", "claude-haiku-4-5": "0.0100", "claude-opus-4-7": "10"},
            [
                {"model": "claude-opus-4-7", "costUsd": "10"},
                {"model": "claude-sonnet-4-6", "costUsd": "9.5"},
                {"model": "claude-haiku-4-5", "costUsd": "0.01"},
            ],
            id="numeric-not-text",
        ),
        pytest.param(
            {"claude-sonnet-4-6": "0.0438"},
            [{"model": "claude-sonnet-4-6", "costUsd": "0.0438"}],
            id="one-model",
        ),
    ],
)
async def test_cost_by_model_lists_models_most_expensive_first(
    gql: GraphQLClient,
    engine: AsyncEngine,
    stored: dict[str, str],
    expected: list[dict[str, str]],
) -> None:
    # given
    session = await insert_session(
        engine, cost_by_model=stored, total_cost_usd=sum(map(Decimal, stored.values()))
    )

    # when
    data = await gql(SESSION_JSON_FIELDS, {"id": session["id"]})

    # then
    assert data["session"]["costByModel"] == expected


async def test_a_long_read_is_decoded_in_slices_with_every_row_in_order(
    gql: GraphQLClient, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the rows of a read decoded 7 at a time (1,000 by default), the event loop
    # running other requests in between, and a session of 50 operations
    monkeypatch.setattr("sessiongraph.db.queries.ROWS_PER_TURN", 7)
    session = await insert_session(engine)
    ids = [f"op-{n:02}" for n in range(50)]
    await insert_operations(
        engine,
        *(
            operation_row(session["id"], operation_id=i, timestamp=T0 + timedelta(seconds=n))
            for n, i in enumerate(ids)
        ),
    )

    # When they are read in one page
    page = await operations_page(gql, session["id"], first=50)

    # Then each is there once, in order
    assert operation_ids(page["operations"]) == ids
    assert page["operations"]["totalCount"] == 50
