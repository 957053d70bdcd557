"""One walk of a document gives the plan that the cost check, the column projection,
page prefetching and the compiled executor all read."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from graphql import parse
from sqlalchemy.ext.asyncio import AsyncEngine

from sessiongraph.config import Settings
from sessiongraph.graphql import plan
from sessiongraph.graphql.limits import fragments_of, measure
from sessiongraph.graphql.schema import build_schema
from tests.helpers import (
    SqlRecorder,
    insert_operations,
    insert_session,
    insert_workflow,
    operation_row,
)

pytestmark = pytest.mark.sqlite_only

SCHEMA = build_schema(Settings())._schema

# Every reader of the plan has something to read: the cost (two connections), the
# projection (a heavy column behind a switch), prefetching (workflowName) and the
# compiled executor (plain fields), through a fragment and an alias.
QUERY = """
query Page($heavy: Boolean!) {
  sessions(first: 20) { nodes { ...Row again: id } }
}
fragment Row on Session {
  id workflowName
  operations(first: 10) { nodes { operationType toolInput @include(if: $heavy) } }
}
"""


@pytest.fixture
async def data(engine: AsyncEngine) -> None:
    await insert_workflow(engine, "wf-1", "Build")
    await insert_session(engine, id="s-1", workflow_id="wf-1")
    await insert_operations(engine, operation_row("s-1", tool_input={"cmd": "ls"}))


async def post(http: httpx.AsyncClient, variables: dict[str, Any]) -> dict[str, Any]:
    response = await http.post("/graphql", json={"query": QUERY, "variables": variables})
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body


async def test_a_request_walks_its_document_once_for_every_reader(
    http: httpx.AsyncClient, data: None, sql: SqlRecorder
) -> None:
    before = plan.walks
    body = await post(http, {"heavy": True})

    assert plan.walks == before + 1
    assert body["extensions"]["cost"]["requestedNodes"] == 20 + 20 * 10
    [node] = body["data"]["sessions"]["nodes"]
    assert node["workflowName"] == "Build"
    assert node["again"] == "s-1"
    assert node["operations"]["nodes"] == [
        {"operationType": "tool_execution_started", "toolInput": {"cmd": "ls"}}
    ]
    assert any("operations.tool_input" in s for s in sql.statements), sql.report()


async def test_a_repeated_request_walks_nothing(
    http: httpx.AsyncClient, data: None, sql: SqlRecorder
) -> None:
    await post(http, {"heavy": False})
    before = plan.walks
    sql.clear()

    body = await post(http, {"heavy": False})

    assert plan.walks == before
    assert body["data"]["sessions"]["nodes"][0]["operations"]["nodes"] == [
        {"operationType": "tool_execution_started"}
    ]
    assert not any("operations.tool_input" in s for s in sql.statements), sql.report()


async def test_each_set_of_switch_values_gets_its_own_plan(
    http: httpx.AsyncClient, data: None
) -> None:
    before = plan.walks
    for heavy in (True, False, True, False):
        await post(http, {"heavy": heavy})

    assert plan.walks == before + 2


def test_a_fragment_spread_in_many_places_is_planned_once() -> None:
    # Each level aliases the next fragment four times: 4**12 leaves if each spread
    # were planned again, twelve selections when each is planned once.
    levels = 12
    fragments = ["fragment F12 on Operation { operationType }"]
    for n in range(levels - 1, -1, -1):
        aliased = " ".join(f"a{k}: git {{ sha }} ...F{n + 1}" for k in range(4))
        fragments.append(f"fragment F{n} on Operation {{ {aliased} }}")
    text = '{ session(id: "s") { operations { nodes { ...F0 } } } } ' + " ".join(fragments)
    document = parse(text)
    operation = document.definitions[0]
    before = plan.walks

    planned = plan.plan_operation(SCHEMA, operation, fragments_of(document), {})  # type: ignore[arg-type]
    measured = measure(SCHEMA, document, operation, {})  # type: ignore[arg-type]

    assert plan.walks == before + 1  # the limits read the plan already made
    assert planned.root is not None
    assert sum(1 for _ in planned.root.reachable()) < 10
    assert measured.cost == 1 + 100


def test_cost_counts_what_execution_collects() -> None:
    # A skipped field returns nothing; one key selected twice returns its nodes once.
    text = """query ($skip: Boolean!) {
      sessions(first: 100) { nodes { id } }
      sessions(first: 100) { nodes { status } }
      big: sessions(first: 200) @skip(if: $skip) { nodes { id } }
    }"""
    document = parse(text)
    operation = document.definitions[0]

    skipped = measure(SCHEMA, document, operation, {"skip": True})  # type: ignore[arg-type]
    kept = measure(SCHEMA, document, operation, {"skip": False})  # type: ignore[arg-type]

    assert (skipped.cost, kept.cost) == (100, 300)


def test_a_fragment_cycle_is_planned_without_end() -> None:
    # Validation refuses it; the limits run first and must not loop.
    text = """{ session(id: "s") { ...A } }
      fragment A on Session { operations { nodes { git { sha } } } ...B }
      fragment B on Session { ...A id }"""
    document = parse(text)
    operation = document.definitions[0]

    measured = measure(SCHEMA, document, operation, {})  # type: ignore[arg-type]

    assert measured.cost == 1 + 100
