"""The README's example queries, run against the demo data `serve` starts with."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from sessiongraph.node_ids import operation_node_id
from sessiongraph.seed import seed_demo_data
from tests.helpers import GraphQLClient

README = Path(__file__).resolve().parent.parent / "README.md"


def example_queries() -> list[str]:
    """The README's ```graphql blocks that are queries (not mutations or subscriptions)."""
    blocks = re.findall(r"```graphql\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    return [block for block in blocks if block.lstrip().startswith("{")]


async def test_readme_queries_answer_on_the_demo_data(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given the demo data
    await seed_demo_data(engine, sessions=200)
    queries = example_queries()
    assert len(queries) >= 4

    # when each example query runs, then it answers without errors
    for query in queries:
        body = await gql.raw(query)
        assert "errors" not in body, (query, body["errors"])

    # and the filter example finds what it describes
    [filtered] = [query for query in queries if "globex" in query]
    data = await gql(filtered)
    nodes = data["sessions"]["nodes"]
    assert data["sessions"]["totalCount"] >= len(nodes) > 0
    assert all(node["agentModelDisplay"].startswith("Opus") for node in nodes)
    assert all(node["status"] in ("COMPLETED", "FAILED") for node in nodes)

    # and the dashboard examples add up to what the sessions hold
    [panel] = [query for query in queries if "costByModel { model costUsd }\n    tools" in query]
    stats = (await gql(panel))["sessionStats"]
    assert stats["costByModel"]
    assert sum(Decimal(m["costUsd"]) for m in stats["costByModel"]) == Decimal(
        stats["totals"]["totalCostUsd"]
    )
    assert stats["tools"][0]["calls"] >= stats["tools"][-1]["calls"] > 0
    [chart] = [query for query in queries if "timeSeries" in query]
    stats = (await gql(chart))["sessionStats"]
    days = stats["timeSeries"]
    assert len(days) > 20
    assert all(day["start"].endswith("T22:00:00+00:00") for day in days)
    assert [g["label"] for g in stats["groupBy"]][:1] != [None]
    [refetch] = [query for query in queries if "nodes(ids:" in query]
    session, operation, unknown = (await gql(refetch))["nodes"]
    assert session["__typename"] == "Session"
    assert operation["__typename"] == "Operation"
    assert operation["id"] == operation_node_id(operation["operationId"])
    assert unknown is None
    [expensive] = [query for query in queries if "git_push" in query]
    listed = (await gql(expensive))["sessions"]
    assert listed["totalCount"] == len(listed["nodes"]) > 0
