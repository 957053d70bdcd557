"""Heavy operation columns are read from the database only when the query selects them."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from sessiongraph.graphql.types.operation import HEAVY_COLUMNS
from tests.helpers import (
    GraphQLClient,
    SqlRecorder,
    insert_operations,
    insert_session,
    operation_row,
)

LIGHT = "operationId operationType timestamp toolName success"


async def _operations_sql(gql: GraphQLClient, sql: SqlRecorder, query: str) -> str:
    sql.clear()
    await gql(query)
    statements = [s for s in sql.statements if "FROM operations" in s and "count(" not in s]
    assert len(statements) == 1, sql.report()
    return statements[0]


@pytest.fixture
async def session_with_heavy_operation(engine: AsyncEngine) -> str:
    session = await insert_session(engine)
    await insert_operations(
        engine,
        operation_row(
            session["id"],
            tool_input={"command": "ls"},
            tool_output="out",
            message_content="m" * 50_000,
            thinking_content="t" * 20_000,
            git={"sha": "abc"},
        ),
    )
    return str(session["id"])


def _columns_named(statement: str) -> set[str]:
    return {c for c in HEAVY_COLUMNS if f"operations.{c}" in statement}


@pytest.mark.usefixtures("session_with_heavy_operation")
async def test_light_query_names_no_heavy_column(gql: GraphQLClient, sql: SqlRecorder) -> None:
    statement = await _operations_sql(
        gql,
        sql,
        f"{{ sessions {{ nodes {{ operations {{ nodes {{ {LIGHT} }} "
        f"edges {{ node {{ {LIGHT} }} }} }} }} }} }}",
    )
    assert _columns_named(statement) == set()
    assert "operations.operation_type" in statement


@pytest.mark.usefixtures("session_with_heavy_operation")
@pytest.mark.parametrize(
    ("selection", "fragments", "expected"),
    [
        pytest.param("nodes { toolInput }", "", {"tool_input"}, id="field"),
        pytest.param("nodes { out: toolOutput }", "", {"tool_output"}, id="alias"),
        pytest.param("edges { node { messageContent } }", "", {"message_content"}, id="edges"),
        pytest.param(
            "nodes { ...Heavy }",
            "fragment Heavy on Operation { thinkingContent toolInput }",
            {"thinking_content", "tool_input"},
            id="fragment",
        ),
        pytest.param(
            "nodes { ... on Operation { messageContent } }", "", {"message_content"}, id="inline"
        ),
        pytest.param(
            "...Page",
            "fragment Page on OperationConnection { edges { node { ...Op } } }"
            " fragment Op on Operation { toolOutput }",
            {"tool_output"},
            id="nested-fragments",
        ),
        pytest.param("nodes { gitSha }", "", {"git"}, id="deprecated-git"),
        pytest.param("nodes { git { sha } }", "", {"git"}, id="git"),
    ],
)
async def test_selected_heavy_columns_are_read(
    gql: GraphQLClient, sql: SqlRecorder, selection: str, fragments: str, expected: set[str]
) -> None:
    statement = await _operations_sql(
        gql, sql, f"{{ sessions {{ nodes {{ operations {{ {selection} }} }} }} }} {fragments}"
    )
    assert _columns_named(statement) == expected


async def test_heavy_values_come_back_when_selected(
    gql: GraphQLClient, session_with_heavy_operation: str
) -> None:
    data = await gql(
        """query ($id: String!) { session(id: $id) { operations { nodes {
            toolInput toolOutput messageContent thinkingContent git { sha } } } } }""",
        {"id": session_with_heavy_operation},
    )
    node = data["session"]["operations"]["nodes"][0]
    assert node["toolInput"] == {"command": "ls"}
    assert node["toolOutput"] == "out"
    assert len(node["messageContent"]) == 50_000
    assert len(node["thinkingContent"]) == 20_000
    assert node["git"] == {"sha": "abc"}


async def test_one_session_field_with_two_shapes_reads_each_as_asked(
    gql: GraphQLClient, sql: SqlRecorder, session_with_heavy_operation: str
) -> None:
    sql.clear()
    data = await gql(
        """query ($id: String!) { session(id: $id) {
            light: operations(first: 10) { nodes { operationId } }
            heavy: operations(first: 10) { nodes { messageContent } } } }""",
        {"id": session_with_heavy_operation},
    )
    pages = [s for s in sql.statements if "FROM operations" in s]
    assert sorted(_columns_named(s) == set() for s in pages) == [False, True], sql.report()
    assert len(data["session"]["heavy"]["nodes"][0]["messageContent"]) == 50_000


@pytest.mark.parametrize(
    ("selection", "read"),
    [
        ("id status reposDisplay", False),
        ("id metadata", True),
        ("id costByModel { model }", True),
        ("id operations(first: 1) { nodes { operationId } }", False),
    ],
)
async def test_a_page_of_sessions_reads_their_documents_only_when_selected(
    gql: GraphQLClient, sql: SqlRecorder, engine: AsyncEngine, selection: str, read: bool
) -> None:
    await insert_session(engine, metadata={"big": "x" * 10_000})
    sql.clear()

    await gql(f"{{ sessions {{ nodes {{ {selection} }} }} }}")

    page = next(s for s in sql.statements if "FROM sessions" in s)
    assert ("metadata" in page) is read, page
    assert ("cost_by_model" in page) is read, page
