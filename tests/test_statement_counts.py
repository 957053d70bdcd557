"""The SQL a request runs depends on the query's shape, never on how many rows come back."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import (
    GraphQLClient,
    SqlRecorder,
    insert_operations,
    insert_sessions,
    insert_workflow,
    operation_row,
    session_row,
)

SPEC_QUERY = """
{ sessions(first: 200) { nodes { workflowName operationCount
    operations(first: 50) { nodes { operationType } } } } }
"""

WIDE_QUERY = """
{ sessions(first: 200) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node {
      id workflowName workflow { id name } operationCount
      commits: operations(first: 5, types: ["git_commit"]) { totalCount nodes { git { sha } } }
      operations(first: 50) {
        totalCount
        pageInfo { hasNextPage }
        edges { cursor node { operationType toolName toolInput messageContent } }
      }
    } }
} }
"""


async def _seed(engine: AsyncEngine, sessions: int) -> None:
    """``sessions`` sessions over 3 workflows, each with 100 operations."""
    for n in range(3):
        await insert_workflow(engine, f"wf-{n}", f"Workflow {n}")
    rows = [session_row(workflow_id=f"wf-{i % 3}") for i in range(sessions)]
    await insert_sessions(engine, *rows)
    operations = [
        operation_row(
            row["id"],
            operation_type="git_commit" if i % 10 == 0 else "tool_execution_started",
            git={"sha": f"{i:040x}"} if i % 10 == 0 else None,
        )
        for row in rows
        for i in range(100)
    ]
    await insert_operations(engine, *operations)


async def _count(gql: GraphQLClient, sql: SqlRecorder, query: str) -> tuple[int, dict[str, object]]:
    sql.clear()
    data = await gql(query)
    return len(sql.statements), data


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # the page with its workflows (and operationCount, a column), operations
        pytest.param(SPEC_QUERY, 2, id="spec-query"),
        # the page with totalCount and workflows; the commits' totalCount (all operations'
        # is the sessions' operationCount), operations (two shapes)
        pytest.param(WIDE_QUERY, 4, id="wide-query"),
    ],
)
@pytest.mark.parametrize("sessions", [1, 20, 200])
async def test_statement_count_is_independent_of_rows(
    gql: GraphQLClient,
    engine: AsyncEngine,
    sql: SqlRecorder,
    query: str,
    expected: int,
    sessions: int,
) -> None:
    # Given sessions, each with operations
    await _seed(engine, sessions)

    # When the query runs
    count, data = await _count(gql, sql, query)

    # Then it returned every session, with the same number of statements for any size
    connection = data["sessions"]
    assert isinstance(connection, dict)
    listed = connection.get("nodes") or connection.get("edges")
    assert isinstance(listed, list)
    assert len(listed) == sessions
    assert count == expected, sql.report()
    assert count <= 5


async def test_spec_query_answers_from_batched_statements(
    gql: GraphQLClient, engine: AsyncEngine, sql: SqlRecorder
) -> None:
    await _seed(engine, 20)

    _, data = await _count(gql, sql, SPEC_QUERY)

    # the page of sessions reads their workflows along, and operationCount is a column
    # of the session: nothing counts operations
    [page, operations] = sql.statements
    assert "JOIN workflows" in page, sql.report()
    assert "operation_count" in page, sql.report()
    assert "count(*)" not in page + operations, sql.report()
    node = data["sessions"]["nodes"][0]  # type: ignore[index]
    assert node["operationCount"] == 100
    assert len(node["operations"]["nodes"]) == 50
    assert node["workflowName"].startswith("Workflow ")


async def test_session_detail_runs_constant_statements(
    gql: GraphQLClient, engine: AsyncEngine, sql: SqlRecorder
) -> None:
    await _seed(engine, 3)
    ids = [n["id"] for n in (await gql("{ sessions { nodes { id } } }"))["sessions"]["nodes"]]
    query = """query ($id: String!) { session(id: $id) {
        id workflowName operationCount
        operations(first: 500) { totalCount nodes { operationId timestamp } } } }"""

    counts = []
    for session_id in ids:
        sql.clear()
        await gql(query, {"id": session_id[:10]})
        counts.append(len(sql.statements))

    # lookup, workflow, page (operationCount is the session's column)
    assert counts == [3, 3, 3], sql.report()


FILTERED_QUERY = """
{ sessions(first: 200, statuses: [COMPLETED, FAILED], filter: {
    or: [{workflowId: {in: ["wf-0", "wf-1"]}}, {not: {repo: {isNull: true}}}]
    hasOperation: {types: ["git_commit"], gitBranch: {isNull: true}}
    metadata: [], errorMessage: null
    and: [{not: {metadata: [{key: "absent", equals: {a: [1]}}]}}, {not: {cacheHitRatio: {gt: 2}}}]
    startedAt: {lt: "2100-01-01T00:00:00Z"}, totalCostUsd: {gte: "0"}
    not: {and: [{startedAt: {lastSeconds: 31622400}}, {startedAt: {gt: "2100-01-01T00:00:00Z"}}]}
  }) {
    totalCount
    nodes { id workflowName operationCount }
} }
"""


@pytest.mark.parametrize("sessions", [1, 20, 200])
async def test_a_filtered_page_is_one_statement(
    gql: GraphQLClient, engine: AsyncEngine, sql: SqlRecorder, sessions: int
) -> None:
    # Given sessions, each with operations (commits among them)
    await _seed(engine, sessions)

    # When a page with a filter of every kind of condition is read
    count, data = await _count(gql, sql, FILTERED_QUERY)

    # Then the page, its workflows, counts and total are one statement, whatever the size,
    # and the filter's values travel as parameters
    connection = data["sessions"]
    assert isinstance(connection, dict)
    matches = len([i for i in range(sessions) if i % 3 != 2])  # in wf-0 or wf-1
    assert connection["totalCount"] == len(connection["nodes"]) == matches
    assert count == 1, sql.report()
    [page] = sql.statements
    for value in ("wf-0", "git_commit", "absent", "2100-01-01", "31622400"):
        assert value not in page, sql.report()
