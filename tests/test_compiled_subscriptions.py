"""Subscription results, compiled and plain: two servers on one PostgreSQL database (one
with the compiled path off) hear the same writes and must send the same bytes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
from starlette.applications import Starlette

from sessiongraph.app import create_app
from sessiongraph.config import Settings
from tests.helpers import GraphQLClient
from tests.live import WSClient, serve, until
from tests.test_subscriptions import COMPLETE, RECORD, START, events_of

pytestmark = pytest.mark.postgres_only

SUBSCRIPTIONS: list[tuple[str, dict[str, Any]]] = [
    (
        """subscription ($id: String!, $withCost: Boolean!, $skipCount: Boolean!) {
          sessionUpdated(id: $id) {
            __typename id ...Figures
            cost: totalCostUsd @include(if: $withCost)
            operationCount @skip(if: $skipCount)
            workflow { __typename id name }
            operations(first: 2) {
              totalCount pageInfo { hasNextPage endCursor }
              nodes { id operationId git { sha } gitSha ... on Node { __typename } }
            }
          }
        }
        fragment Figures on Session {
          status totalTokens durationDisplay completedAt costByModel { model costUsd }
          ... on Session { reposDisplay tokens: totalTokensDisplay }
        }""",
        {"id": "s-diff", "withCost": True, "skipCount": False},
    ),
    (
        """subscription ($id: String!) { operationsRecorded(sessionId: $id) {
          __typename sessionId
          operations {
            id operationId operationType timestamp success durationSeconds toolName
            toolInput toolOutput messageContent git { sha filesChanged } gitBranch
          }
        } }""",
        {"id": "s-diff"},
    ),
    (
        """subscription { sessionsChanged(statuses: [RUNNING]) {
          kind matchesFilter session {
            ... on Node { id } status workflowName operationCount agentModelDisplay
          }
        } }""",
        {},
    ),
]


@asynccontextmanager
async def started(app: Starlette) -> AsyncIterator[Starlette]:
    async with app.router.lifespan_context(app):
        yield app


async def test_subscription_results_are_the_same_bytes_both_ways(
    app: Starlette, settings: Settings, gql: GraphQLClient
) -> None:
    plain = create_app(settings.model_copy(update={"compiled_execution": False}))
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(started(plain))
        clients = []
        for server in (app, plain):
            url = await stack.enter_async_context(serve(server))
            client = await stack.enter_async_context(WSClient.open(url))
            for query, variables in SUBSCRIPTIONS:
                await client.subscribe(query, variables)
            clients.append(client)
        for server in (app, plain):
            await until(lambda server=server: events_of(server).subscriber_count >= 3)

        writes: list[tuple[str, dict[str, Any], int]] = [
            (START, {"id": "s-diff", "wf": "wf-diff"}, 2),
            (
                RECORD,
                {
                    "id": "s-diff",
                    "ops": [
                        {
                            "operationId": "o-1",
                            "operationType": "git_commit",
                            "timestamp": "2026-04-18T08:00:01Z",
                            "durationSeconds": 1.5,
                            "toolName": "Bash",
                            "toolInput": {"command": "git commit", "n": [1, 2]},
                            "toolOutput": "done",
                            "git": {"sha": "abc123", "files_changed": 3, "branch": "main"},
                        },
                        {"operationId": "o-2", "operationType": "message_response"},
                        {"operationId": "o-3", "operationType": "x", "success": False},
                    ],
                },
                3,
            ),
            (COMPLETE, {"id": "s-diff"}, 2),
        ]
        for query, variables, expected in writes:
            await gql(query, variables)
            compiled_messages, plain_messages = [
                sorted([await client.receive() for _ in range(expected)], key=_by_id)
                for client in clients
            ]
            assert [json.dumps(m) for m in compiled_messages] == [
                json.dumps(m) for m in plain_messages
            ]
            assert all(m["type"] == "next" and "errors" not in m["payload"] for m in plain_messages)


def _by_id(message: dict[str, Any]) -> str:
    return str(message["id"])
