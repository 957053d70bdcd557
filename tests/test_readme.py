"""The README's operations, run as printed against the demo data `serve` starts with;
the examples/ folder holds the same operations, for codegen."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from graphql import OperationType, build_schema, parse, validate
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from sessiongraph.node_ids import operation_node_id
from sessiongraph.seed import README_SESSION_ID, seed_demo_data
from tests.helpers import GraphQLClient
from tests.live import WSClient, serve
from tests.readme_examples import EXAMPLES, ROOT, Example, examples

SCHEMA = build_schema((ROOT / "schema.graphql").read_text(encoding="utf-8"))


def by_name() -> dict[str, Example]:
    return {example.name: example for example in examples()}


def assert_not_empty(name: str, data: dict[str, Any]) -> None:
    """Each root field answered something: not null, and a list with nodes, if a list."""
    for field, value in data.items():
        assert value is not None, (name, field)
        if isinstance(value, dict):
            for key in ("nodes", "edges"):
                if key in value:
                    assert value[key], (name, field, key)
            if "totalCount" in value:
                assert value["totalCount"] > 0, (name, field)


def test_every_table_has_its_header_and_one_cell_per_column() -> None:
    # a blank line inside a table ends it: the rows after it would be a paragraph
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    tables: list[list[str]] = []
    for previous, line in zip(["", *lines], lines, strict=False):
        if line.startswith("|"):
            if not previous.startswith("|"):
                tables.append([])
            tables[-1].append(line.replace("\\|", ""))
    assert len(tables) >= 5
    for table in tables:
        assert set(table[1]) <= set("|-: "), table[:2]
        # (a `|` splits a cell even inside backticks, unless escaped)
        columns = {len(row.split("|")) for row in table}
        assert len(columns) == 1, table[0]


def test_every_operation_is_named_with_its_variables_shown() -> None:
    found = examples()
    assert len(found) >= 12
    assert len({example.name for example in found}) == len(found)
    for example in found:
        [operation] = parse(example.document).definitions
        definitions = operation.variable_definitions or ()  # type: ignore[attr-defined]
        declared = {v.variable.name.value for v in definitions}
        assert set(example.variables) == declared, example.name
        assert validate(SCHEMA, parse(example.document)) == [], example.name


def test_the_examples_folder_holds_the_readme_operations() -> None:
    files = {path.stem: path.read_text(encoding="utf-8") for path in EXAMPLES.glob("*.graphql")}
    assert files == {example.name: example.document for example in examples()}


async def test_readme_operations_answer_on_the_demo_data(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given the demo data
    await seed_demo_data(engine, sessions=200)

    # when each query and mutation runs as printed, in the README's order, then it
    # answers without errors, and not emptily
    answers: dict[str, dict[str, Any]] = {}
    for example in examples():
        if example.kind is OperationType.SUBSCRIPTION:
            continue
        body = await gql.raw(example.document, example.variables)
        assert "errors" not in body, (example.name, body["errors"])
        assert_not_empty(example.name, body["data"])
        answers[example.name] = body["data"]

    # and the dashboard list finds the failed and cancelled releases of its day
    releases = answers["FailedReleases"]["sessions"]["nodes"]
    assert {node["status"] for node in releases} == {"FAILED", "CANCELLED"}
    assert {node["workflowName"] for node in releases} == {"Release"}
    # and the timeline is the seeded session's, by its prefix
    assert answers["SessionTimeline"]["session"]["id"] == README_SESSION_ID
    assert answers["SessionTimeline"]["session"]["operations"]["nodes"]

    # and the filter example finds what it describes
    nodes = answers["CostlyOpusOnMain"]["sessions"]["nodes"]
    assert all(node["agentModelDisplay"].startswith("Opus") for node in nodes)
    assert all(node["status"] in ("COMPLETED", "FAILED") for node in nodes)

    # and the dashboard examples add up to what the sessions hold
    stats = answers["WorkflowCostPanel"]["sessionStats"]
    assert stats["costByModel"]
    assert sum(Decimal(m["costUsd"]) for m in stats["costByModel"]) == Decimal(
        stats["totals"]["totalCostUsd"]
    )
    assert stats["tools"][0]["calls"] >= stats["tools"][-1]["calls"] > 0
    stats = answers["CostPerDayChart"]["sessionStats"]
    days = stats["timeSeries"]
    assert len(days) > 20
    assert all(day["start"].endswith("T22:00:00+00:00") for day in days)
    assert [g["label"] for g in stats["groupBy"]][:1] != [None]
    session, operation, unknown = answers["Refetch"]["nodes"]
    assert session["__typename"] == "Session"
    assert operation["__typename"] == "Operation"
    assert operation["id"] == operation_node_id(operation["operationId"])
    assert unknown is None
    listed = answers["CostlyOpusPushes"]["sessions"]
    assert listed["totalCount"] == len(listed["nodes"]) > 0

    # and the mutations wrote the session they name
    assert answers["CompleteSession"]["completeSession"]["status"] == "COMPLETED"
    recorded = answers["RecordOperations"]["recordOperations"]
    assert recorded["recordedOperationIds"] == ["op-1", "op-2"]
    # and a retried start and completion return what is stored
    for name in ("StartSession", "CompleteSession"):
        again = await gql.raw(by_name()[name].document, by_name()[name].variables)
        assert "errors" not in again, again
        [(field, stored)] = answers[name].items()
        assert again["data"][field] == stored | {"status": "COMPLETED"}, name


async def test_readme_subscriptions_run_over_websocket(app: Starlette, engine: AsyncEngine) -> None:
    # given the demo data and a real server
    await seed_demo_data(engine, sessions=20)
    header, running = by_name()["SessionHeader"], by_name()["RunningSessions"]
    async with serve(app) as url, WSClient.open(url) as client:
        # when the README's subscriptions start, then each is accepted, and the session
        # header sends the seeded session as it is
        first = await client.subscribe(header.document, header.variables)
        data = await client.next(first)
        assert data["sessionUpdated"]["status"] == "COMPLETED"
        await client.subscribe(running.document, running.variables)
        await client.nothing(0.2)
