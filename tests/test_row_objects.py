"""Sessions made from their rows: the compiled path completes a page of sessions whose
selected fields are columns or computed from columns straight from the rows, building
no Session objects; anything else builds them. Every query here also runs with the
compiled path off (``gql``), which must answer the same bytes."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from sessiongraph.graphql.types.session import Session
from tests.helpers import T0, GraphQLClient, insert_session, insert_workflow

DASHBOARD = """{ sessions(first: 50) { totalCount nodes {
  id status workflowName phaseDisplay agentModel agentModelDisplay reposDisplay
  inputTokensDisplay outputTokensDisplay totalTokens totalTokensDisplay totalCostUsd
  totalCostDisplay startedAt completedAt durationSeconds durationDisplay errorMessage
  operationCount toolCallCount failedOperationCount subagentCount commitCount cacheHitRatio
  updatedAt __typename } } }"""


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the Session objects built from rows, as they are built."""
    seen: list[str] = []
    original = Session.from_row.__func__  # type: ignore[attr-defined]

    def from_row(cls: type[Session], row: Any) -> Session:
        seen.append(row["id"])
        return original(cls, row)  # type: ignore[no-any-return]

    monkeypatch.setattr(Session, "from_row", classmethod(from_row))
    return seen


async def _sessions(engine: AsyncEngine) -> None:
    await insert_workflow(engine, "wf-1", "Release")
    await insert_session(engine, id="s-1", workflow_id="wf-1", started_at=T0, repos=["a/b", "c/d"])
    await insert_session(engine, id="s-2", status="running", completed_at=None, phase_id=None)
    await insert_session(engine, id="s-3", workflow_id="wf-gone", agent_model=None)


async def test_a_page_of_columns_and_cells_builds_no_sessions(
    gql: GraphQLClient, engine: AsyncEngine, built: list[str]
) -> None:
    await _sessions(engine)

    data = await gql(DASHBOARD)  # the plain path, run second, builds its own

    nodes = data["sessions"]["nodes"]
    assert {n["workflowName"] for n in nodes} == {"Release", None}
    assert nodes[0]["__typename"] == "Session"
    assert sorted(built) == sorted(n["id"] for n in nodes)  # the plain path's alone


@pytest.mark.parametrize(
    "selection",
    [
        "id workflow { id name }",
        "id costByModel { model costUsd }",
        "id metadata",
        "id operations(first: 2) { nodes { operationId } }",
        "id toolUsage(first: 2) { toolName }",
    ],
)
async def test_fields_that_need_the_session_build_it(
    gql: GraphQLClient, engine: AsyncEngine, built: list[str], selection: str
) -> None:
    await _sessions(engine)

    data = await gql(f"{{ sessions {{ nodes {{ {selection} }} }} }}")

    ids = [n["id"] for n in data["sessions"]["nodes"]]
    # metadata is a column, read only when selected: the rows have it, nothing is built
    expected = sorted(ids) if selection == "id metadata" else sorted(ids * 2)
    assert sorted(built) == expected


@pytest.mark.parametrize(
    "values",
    [
        {"total_tokens": 2**40},  # past GraphQL's Int: an error at its path
        {"duration_seconds": float("nan")},  # no JSON number: an error at its path
        {"started_at": None, "completed_at": None, "duration_seconds": None},
        {"repos": {"not": "a list"}},
        {"repos": ["ok/one", 7, None]},
        {"phase_id": "", "agent_model": "", "total_cost_usd": 0},
        {"input_tokens": 3, "cache_read_tokens": 1, "cache_creation_tokens": 0},
        {"input_tokens": 0, "cache_read_tokens": 2**40, "cache_creation_tokens": 2**40},
    ],
    ids=[
        "int-overflow",
        "nan",
        "undated",
        "repos-object",
        "repos-mixed",
        "empty",
        "cache-ratio",
        "cache-ratio-of-big-counts",
    ],
)
async def test_unusual_stored_values_answer_as_the_plain_path_does(
    gql: GraphQLClient, engine: AsyncEngine, values: dict[str, Any]
) -> None:
    await insert_session(engine, id="s-odd", **values)
    await insert_session(engine, id="s-plain")

    body = await gql.raw(DASHBOARD.replace("operationCount", "operationCount repos"))

    assert "data" in body  # and the same bytes both ways, errors included
