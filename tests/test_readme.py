"""The README's example queries, run against the demo data `serve` starts with."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

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
    [filtered] = [query for query in queries if "filter:" in query]
    data = await gql(filtered)
    nodes = data["sessions"]["nodes"]
    assert data["sessions"]["totalCount"] >= len(nodes) > 0
    assert all(node["agentModelDisplay"].startswith("Opus") for node in nodes)
    assert all(node["status"] in ("COMPLETED", "FAILED") for node in nodes)
