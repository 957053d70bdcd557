"""The Python `gql` client against a real server: its HTTP transport (aiohttp) for
queries, mutations, pagination and errors, its WebSocket transport
(graphql-transport-ws) for queries and each subscription."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from gql import Client, GraphQLRequest
from gql.client import AsyncClientSession
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from sessiongraph.seed import README_SESSION_ID, seed_demo_data
from tests.live import serve, until

PAGE = """
query Page($after: String) {
  sessions(first: 7, after: $after, orderBy: { field: TOTAL_COST_USD }) {
    pageInfo { hasNextPage endCursor }
    nodes { id }
  }
}"""
START = """
mutation Start($id: String!) {
  startSession(input: { id: $id, workflowId: "wf-release", agentModel: "claude-sonnet-4-6" }) {
    id status
  }
}"""
RECORD = """
mutation Record($id: String!, $op: String!) {
  recordOperations(sessionId: $id, operations: [
    { operationId: $op, operationType: "tool_execution_completed", toolName: "Bash" }
  ]) { recordedOperationIds }
}"""
COMPLETE = """
mutation Complete($id: String!) {
  completeSession(id: $id, status: COMPLETED, totalCostUsd: "0.25") { status totalCostDisplay }
}"""


def request(document: str, **variables: Any) -> GraphQLRequest:
    return GraphQLRequest(document, variable_values=variables)


@asynccontextmanager
async def http_session(url: str) -> AsyncIterator[AsyncClientSession]:
    transport = AIOHTTPTransport(url=url.replace("ws://", "http://"))
    async with Client(transport=transport) as session:
        yield session


@asynccontextmanager
async def ws_session(url: str) -> AsyncIterator[AsyncClientSession]:
    transport = WebsocketsTransport(
        url=url, subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL]
    )
    async with Client(transport=transport) as session:
        yield session


async def test_queries_mutations_and_pages_over_http(app: Starlette, engine: AsyncEngine) -> None:
    # given the demo data and a real server
    await seed_demo_data(engine, sessions=30)
    async with serve(app) as url, http_session(url) as client:
        # a query, with variables
        timeline = await client.execute(
            request(
                "query T($id: String!) { session(id: $id) { id operations(first: 3) "
                "{ nodes { operationType } } } }",
                id="3f2a9c1e",
            )
        )
        assert timeline["session"]["id"] == README_SESSION_ID
        assert len(timeline["session"]["operations"]["nodes"]) == 3

        # pagination: the pages, cursor after cursor, are the whole list in order
        everything = await client.execute(
            request("{ sessions(first: 200, orderBy: { field: TOTAL_COST_USD }) { nodes { id } } }")
        )
        paged: list[str] = []
        after = None
        while True:
            page = (await client.execute(request(PAGE, after=after)))["sessions"]
            paged += [node["id"] for node in page["nodes"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        assert paged == [node["id"] for node in everything["sessions"]["nodes"]]
        assert len(paged) == 30

        # mutations
        started = await client.execute(request(START, id="gql-http-1"))
        assert started["startSession"] == {"id": "gql-http-1", "status": "RUNNING"}
        recorded = await client.execute(request(RECORD, id="gql-http-1", op="op-1"))
        assert recorded["recordOperations"]["recordedOperationIds"] == ["op-1"]
        completed = await client.execute(request(COMPLETE, id="gql-http-1"))
        assert completed["completeSession"] == {"status": "COMPLETED", "totalCostDisplay": "$0.25"}

        # and an error reaches the client with its code
        with pytest.raises(TransportQueryError) as raised:
            await client.execute(request("{ sessions(first: 0) { totalCount } }"))
        assert raised.value.errors is not None
        assert raised.value.errors[0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_each_subscription_over_graphql_transport_ws(
    app: Starlette, engine: AsyncEngine
) -> None:
    # given a real server, a WebSocket client subscribed to each subscription
    await seed_demo_data(engine, sessions=5)
    async with serve(app) as url, ws_session(url) as ws, http_session(url) as http:
        # a query over the WebSocket too
        listed = await ws.execute(request("{ sessions(first: 2) { nodes { id } } }"))
        assert len(listed["sessions"]["nodes"]) == 2

        updated: list[dict[str, Any]] = []
        recorded: list[dict[str, Any]] = []
        changed: list[dict[str, Any]] = []

        async def collect(document: str, into: list[dict[str, Any]], **variables: Any) -> None:
            async for result in ws.subscribe(request(document, **variables)):
                into.append(result)

        tasks = [
            asyncio.create_task(
                collect(
                    "subscription U($id: String!) { sessionUpdated(id: $id) { status } }",
                    updated,
                    id="gql-ws-1",
                )
            ),
            asyncio.create_task(
                collect(
                    "subscription R($id: String!) { operationsRecorded(sessionId: $id) "
                    "{ operations { operationId } } }",
                    recorded,
                    id="gql-ws-1",
                )
            ),
            asyncio.create_task(
                collect(
                    'subscription C { sessionsChanged(workflowId: "wf-release") '
                    "{ kind matchesFilter session { id status } } }",
                    changed,
                )
            ),
        ]
        try:
            await asyncio.sleep(0.5)  # the subscriptions listen

            # when a session starts, records an operation and completes
            await http.execute(request(START, id="gql-ws-1"))
            await http.execute(request(RECORD, id="gql-ws-1", op="op-1"))
            await http.execute(request(COMPLETE, id="gql-ws-1"))

            # then each subscription tells of it
            await until(
                lambda: bool(
                    recorded
                    and updated
                    and updated[-1]["sessionUpdated"]["status"] == "COMPLETED"
                    and changed
                    and changed[-1]["sessionsChanged"]["session"]["status"] == "COMPLETED"
                )
            )
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    assert recorded == [{"operationsRecorded": {"operations": [{"operationId": "op-1"}]}}]
    assert {event["sessionsChanged"]["session"]["id"] for event in changed} == {"gql-ws-1"}
    assert updated[0]["sessionUpdated"]["status"] == "RUNNING"
