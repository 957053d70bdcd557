from tests.helpers import GraphQLClient, insert_session, insert_timeline


async def test_sessions_and_operations(gql: GraphQLClient, engine) -> None:  # type: ignore[no-untyped-def]
    s = await insert_session(engine, total_cost_usd="0.0438", repos=["acme/foo", "acme/bar"])
    await insert_timeline(engine, s["id"], 3)
    data = await gql(
        "{ sessions(first: 5) { totalCount nodes { id status totalCostDisplay totalCostUsd reposDisplay startedAt"
        " operationCount operations(first: 2) { totalCount pageInfo { hasNextPage endCursor } nodes { operationId timestamp } } } } }"
    )
    print(data)
