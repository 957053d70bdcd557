"""Identity for client caches (SPEC §6): ``Node``, ``node`` and ``nodes``, global ids."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from sessiongraph.graphql.execution import CompiledExecutionContext
from sessiongraph.importer import import_file
from sessiongraph.node_ids import operation_id_of, operation_node_id
from tests.helpers import (
    T0,
    GraphQLClient,
    SqlRecorder,
    cost,
    insert_operations,
    insert_session,
    insert_sessions,
    insert_workflow,
    operation_row,
    session_row,
)

NODES = """query ($ids: [ID!]!) { nodes(ids: $ids) {
  __typename id
  ... on Session { status workflowName operations(first: 2) { nodes { id operationId } } }
  ... on Operation { operationId operationType toolInput }
} }"""


def op(operation_id: str) -> str:
    """An operation's global id, written out as SPEC §6 defines it."""
    encoded = base64.urlsafe_b64encode(operation_id.encode()).decode().rstrip("=")
    return f"op:{encoded}"


@pytest.fixture
async def two(engine: AsyncEngine) -> None:
    """Sessions s-1 (two operations, a workflow) and s-2 (one operation)."""
    await insert_workflow(engine, "wf-1", "Release")
    await insert_session(engine, id="s-1", workflow_id="wf-1")
    await insert_session(engine, id="s-2", status="running")
    await insert_operations(
        engine,
        operation_row("s-1", operation_id="o-1", tool_input="ls"),
        operation_row("s-1", operation_id="o-2", operation_type="git_commit"),
        operation_row("s-2", operation_id="é/漢?+", timestamp=None),
    )


async def test_an_operation_id_is_op_and_the_base64url_of_its_operation_id(
    gql: GraphQLClient, two: None
) -> None:
    data = await gql(
        '{ session(id: "s-2") { id __typename operations { nodes { id operationId } } } }'
    )

    assert data["session"]["id"] == "s-2"  # the session's own id, unchanged
    [operation] = data["session"]["operations"]["nodes"]
    assert operation == {"id": op("é/漢?+"), "operationId": "é/漢?+"}
    assert "=" not in operation["id"]
    assert operation_id_of(operation["id"]) == "é/漢?+"


async def test_nodes_answers_each_id_in_order_with_null_for_what_nothing_has(
    gql: GraphQLClient, two: None
) -> None:
    ids = ["s-2", op("o-1"), "nope", "s-1", op("o-missing"), "s-2", op("é/漢?+")]

    data = await gql(NODES, {"ids": ids})

    nodes = data["nodes"]
    assert [n and n["id"] for n in nodes] == ["s-2", op("o-1"), None, "s-1", None, "s-2", ids[-1]]
    assert [n and n["__typename"] for n in nodes] == [
        "Session",
        "Operation",
        None,
        "Session",
        None,
        "Session",
        "Operation",
    ]
    assert nodes[1] == {
        "__typename": "Operation",
        "id": op("o-1"),
        "operationId": "o-1",
        "operationType": "tool_execution_started",
        "toolInput": {"raw": "ls"},
    }
    assert nodes[3]["workflowName"] == "Release"
    assert nodes[3]["operations"]["nodes"] == [
        {"id": op("o-1"), "operationId": "o-1"},
        {"id": op("o-2"), "operationId": "o-2"},
    ]
    assert (await gql(NODES, {"ids": []})) == {"nodes": []}


@pytest.mark.parametrize(
    "wanted",
    [
        "s-",  # a prefix of two sessions: exact ids only, never AMBIGUOUS_ID
        "s",
        "",
        " ",
        "s-1 ",
        "S-1",
        "x" * 500,
        "s-\u0000",
        "op:",
        "op:bz0x",  # base64 of "o=1", not of an operation id
        op("o-1") + "=",  # padded
        op("o-1").replace("op:", "OP:"),
        op("o-1")[:-1],
        "op:!!!!",
        "op:" + "A" * 400,
        "op:gA",  # not UTF-8
        "op:" + base64.urlsafe_b64encode(b"o-1\x00").decode().rstrip("="),
        "s-1" + op("o-1"),
    ],
)
async def test_a_malformed_or_unknown_id_is_null_without_an_error(
    gql: GraphQLClient, two: None, wanted: str
) -> None:
    query = "query ($id: ID!) { node(id: $id) { id } }"

    assert await gql(query, {"id": wanted}) == {"node": None}
    assert await gql("query ($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": [wanted]}) == {
        "nodes": [None]
    }


async def test_node_refetches_a_session_and_an_operation(gql: GraphQLClient, two: None) -> None:
    query = """query ($id: ID!) { node(id: $id) { __typename id
        ... on Node { again: id }
        ... on Session { workflow { id name } operationCount }
        ... on Operation { sessionId gitSha } } }"""

    session = await gql(query, {"id": "s-1"})
    operation = await gql(query, {"id": op("o-2")})

    assert session["node"] == {
        "__typename": "Session",
        "id": "s-1",
        "again": "s-1",
        "workflow": {"id": "wf-1", "name": "Release"},
        "operationCount": 2,
    }
    assert operation["node"] == {
        "__typename": "Operation",
        "id": op("o-2"),
        "again": op("o-2"),
        "sessionId": "s-1",
        "gitSha": None,
    }


async def test_more_than_a_hundred_ids_is_bad_user_input(gql: GraphQLClient, two: None) -> None:
    query = "query ($ids: [ID!]!) { nodes(ids: $ids) { id } }"

    error = await gql.error(query, {"ids": ["s-1"] * 101}, code="BAD_USER_INPUT")
    found = await gql(query, {"ids": ["s-1"] * 100})

    assert error["extensions"]["argumentName"] == "ids"
    assert error["path"] == ["nodes"]
    assert found["nodes"] == [{"id": "s-1"}] * 100


async def test_nodes_is_costed_per_id(http: Any, two: None) -> None:
    query = """query ($ids: [ID!]!) { nodes(ids: $ids) {
        ... on Session { operations(first: 10) { nodes { id } } } } }"""

    three = await http.post("/graphql", json={"query": query, "variables": {"ids": ["a"] * 3}})
    wide = query.replace("first: 10", "first: 1000")
    over = await http.post("/graphql", json={"query": wide, "variables": {"ids": ["a"] * 100}})

    # 3 nodes, each with a page of 10
    assert three.json()["extensions"] == cost(3 + 3 * 10)
    [error] = over.json()["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert error["extensions"]["requested"] == 100 + 100 * 1000


@pytest.mark.parametrize("count", [3, 10, 100])
async def test_nodes_reads_in_constant_statements_whatever_the_number_of_ids(
    gql: GraphQLClient, engine: AsyncEngine, sql: SqlRecorder, count: int
) -> None:
    await insert_workflow(engine, "wf-1", "Release")
    rows = await insert_sessions(engine, *(session_row(workflow_id="wf-1") for _ in range(50)))
    await insert_operations(
        engine, *(operation_row(row["id"], git={"sha": "abc"}) for row in rows for _ in range(2))
    )
    sessions = [row["id"] for row in rows]
    listed = await gql("{ sessions(first: 50) { nodes { operations { nodes { id } } } } }")
    operations = [o["id"] for n in listed["sessions"]["nodes"] for o in n["operations"]["nodes"]]
    ids = [(sessions if i % 2 else operations)[i // 2] for i in range(count - 1)] + ["s-none"]
    query = """query ($ids: [ID!]!) { nodes(ids: $ids) { id
        ... on Session { workflowName toolUsage { toolName } operations(first: 5) { totalCount
            nodes { id git { sha } } } }
        ... on Operation { gitSha toolInput } } }"""

    sql.clear()
    data = await gql(query, {"ids": ids})

    assert len(data["nodes"]) == count
    assert data["nodes"][-1] is None
    assert sum(node is not None for node in data["nodes"]) == count - 1
    # the sessions, their workflows, tool usage and pages; the operations
    assert len(sql.statements) == 5, sql.report()


async def test_startsession_refuses_an_id_an_operation_could_have(gql: GraphQLClient) -> None:
    error = await gql.error(
        'mutation { startSession(input: {id: "op:b-1"}) { id } }', code="BAD_USER_INPUT"
    )
    started = await gql('mutation { startSession(input: {id: "b-op:1"}) { id } }')

    assert error["extensions"]["field"] == "input.id"
    assert "op:" in error["message"]
    assert started == {"startSession": {"id": "b-op:1"}}


async def test_import_skips_a_session_an_operation_could_be_named_as(
    gql: GraphQLClient, engine: AsyncEngine, tmp_path: Path
) -> None:
    records = [
        {"id": "op:x", "status": "running"},
        {
            "id": "s-1",
            "status": "running",
            "operations": [{"operation_id": "op:x", "operation_type": "t"}],
        },
    ]
    path = tmp_path / "sessions.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))

    report = await import_file(engine, path)

    [(where, reason)] = report.skipped
    assert where == "line 1"
    assert "op:" in reason
    # an operation id may start with op: (its global id is op:b3A6eA)
    data = await gql('{ nodes(ids: ["op:x", "op:b3A6eA"]) { id } }')
    assert data == {"nodes": [None, {"id": operation_node_id("op:x")}]}


#: What graphql-core executes by itself (not the compiled readers), per request.
Executed = list[tuple[str, tuple[str, ...]]]


@pytest.fixture
def executed(monkeypatch: pytest.MonkeyPatch) -> Executed:
    """The (type, response keys) of each selection graphql-core executes by itself: what
    the compiled path leaves to it."""
    seen: Executed = []
    plain = StrawberryGraphQLCoreExecutionContext.execute_fields

    def recording(
        self: Any, parent_type: Any, source: Any, path: Any, fields: Any, *rest: Any
    ) -> Any:
        if isinstance(self, CompiledExecutionContext):  # not the plain app's
            seen.append((parent_type.name, tuple(fields)))
        return plain(self, parent_type, source, path, fields, *rest)

    monkeypatch.setattr(StrawberryGraphQLCoreExecutionContext, "execute_fields", recording)
    return seen


@pytest.mark.sqlite_only
async def test_the_compiled_path_reads_ids_fragments_on_node_and_typenames(
    gql: GraphQLClient, two: None, executed: Executed
) -> None:
    pages = """{ sessions { nodes { __typename id ... on Node { nodeId: id }
        operations { edges { node { __typename id ... on Node { id } } } nodes { id } } }
        edges { node { id } } } }"""
    refetched = """query ($ids: [ID!]!) { nodes(ids: $ids) { __typename id
        ... on Session { status workflowName operations(first: 1) { nodes { id operationId } } }
        ... on Operation { operationId toolInput git { sha } } } }"""

    await gql(pages)
    await gql(refetched, {"ids": ["s-1", op("o-2"), "s-2", "none"]})

    # graphql-core resolves the root fields (they read the database); the compiled
    # readers complete every object below them, the interface's too
    assert executed == [("Query", ("sessions",)), ("Query", ("nodes",))]


async def test_session_ids_are_ids_with_the_same_values(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    await insert_session(engine, id="a-1", started_at=T0)

    data = await gql(
        '{ sessions { nodes { id } } session(id: "a-") { id } node(id: "a-1") { id } }'
    )
    types = await gql(
        '{ __type(name: "Session") { interfaces { name } fields { name type { '
        "kind ofType { name } } } } "
        'workflow: __type(name: "Workflow") { interfaces { name } } }'
    )

    assert data == {
        "sessions": {"nodes": [{"id": "a-1"}]},
        "session": {"id": "a-1"},
        "node": {"id": "a-1"},
    }
    assert types["__type"]["interfaces"] == [{"name": "Node"}]
    assert types["workflow"]["interfaces"] == []  # a workflow keeps its plain id
    [id_field] = [f for f in types["__type"]["fields"] if f["name"] == "id"]
    assert id_field["type"] == {"kind": "NON_NULL", "ofType": {"name": "ID"}}


async def test_refetched_operations_read_the_heavy_columns_selected_on_them_alone(
    gql: GraphQLClient, two: None, sql: SqlRecorder
) -> None:
    query = """query ($ids: [ID!]!) { nodes(ids: $ids) {
        ... on Operation { toolInput }
        ... on Session { operations { nodes { messageContent } } } } }"""

    sql.clear()
    data = await gql(query, {"ids": [op("o-1"), "s-1"]})

    assert data["nodes"][0] == {"toolInput": {"raw": "ls"}}
    [refetch] = [s for s in sql.statements if "operations.operation_id IN" in s]
    assert "tool_input" in refetch, sql.report()
    assert "message_content" not in refetch, sql.report()
