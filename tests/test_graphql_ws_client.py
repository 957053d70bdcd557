"""The graphql-ws reference JavaScript client against a real server, and the README's
JavaScript snippet, as printed, on the Node installed."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from sessiongraph.seed import seed_demo_data
from tests import npm
from tests.live import serve
from tests.readme_examples import snippets

#: What a snippet imports from (`import ... from "x"`).
IMPORTED = re.compile(r'^import .* from "([^"]+)";', re.MULTILINE)

pytestmark = pytest.mark.sqlite_only  # the events' transport has its own tests on both

START = """mutation ($id: String!) {
  startSession(input: { id: $id, workflowId: "wf-release" }) { id } }"""
RECORD = """mutation ($id: String!, $op: String!) {
  recordOperations(sessionId: $id, operations: [
    { operationId: $op, operationType: "tool_execution_completed", toolName: "Bash" }
  ]) { recordedOperationIds } }"""


async def post(url: str, query: str, **variables: Any) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(url, json={"query": query, "variables": variables})
    assert "errors" not in response.json(), response.json()


async def node_process(*args: str, script: str, folder: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        npm.node(),
        script,
        *args,
        cwd=npm.project(folder),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def lines_until(
    process: asyncio.subprocess.Process, done: Any, within: float = 20
) -> list[str]:
    """The process's output lines, read until ``done(line)`` (or it exits)."""
    assert process.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(within):
        while True:
            line = (await process.stdout.readline()).decode()
            if not line:
                assert process.stderr is not None
                raise AssertionError(
                    "exited:\n" + "".join(lines) + (await process.stderr.read()).decode()
                )
            lines.append(line)
            if done(line):
                return lines


async def test_graphql_ws_receives_a_session_s_events(app: Starlette, engine: Any) -> None:
    # given a real server, and the graphql-ws client subscribed to a session's operations
    await seed_demo_data(engine, sessions=3)
    async with serve(app) as url:
        http_url = url.replace("ws://", "http://")
        await post(http_url, START, id="js-1")
        subscription = (
            "subscription ($id: String!) { operationsRecorded(sessionId: $id) "
            "{ operations { operationId toolName } } }"
        )
        process = await node_process(
            url,
            "2",
            subscription,
            json.dumps({"id": "js-1"}),
            script="subscribe.mjs",
            folder="graphql-ws",
        )
        try:
            await lines_until(process, lambda line: "connected" in line)
            await asyncio.sleep(0.3)  # the subscribe message is in

            # when two batches are recorded
            await post(http_url, RECORD, id="js-1", op="op-1")
            await post(http_url, RECORD, id="js-1", op="op-2")

            # then the client receives both, and exits
            assert process.stdout is not None
            output = (await asyncio.wait_for(process.stdout.read(), 20)).decode()
            assert await process.wait() == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    results = [json.loads(line)["data"] for line in output.splitlines()]
    assert results == [
        {"operationsRecorded": {"operations": [{"operationId": op, "toolName": "Bash"}]}}
        for op in ("op-1", "op-2")
    ]


async def test_the_readme_snippet_runs_on_node(app: Starlette, engine: Any, tmp_path: Any) -> None:
    # given the README's graphql-ws snippet, pointed at a real server
    [snippet] = [s for s in snippets() if set(re.findall(IMPORTED, s)) == {"graphql-ws", "ws"}]
    await seed_demo_data(engine, sessions=3)
    async with serve(app) as url:
        http_url = url.replace("ws://", "http://")
        script = npm.project("graphql-ws") / "readme-snippet.mjs"
        script.write_text(snippet.replace("ws://127.0.0.1:8000/graphql", url), encoding="utf-8")
        [session_id] = re.findall(r'const id = "([^"]+)"', snippet)
        await post(http_url, START, id=session_id)
        process = await node_process(script=script.name, folder="graphql-ws")
        try:
            await asyncio.sleep(1.5)  # node starts, the client connects and subscribes

            # when the session records a batch
            await post(http_url, RECORD, id=session_id, op="op-1")

            # then the snippet prints the batch's operations
            lines = await lines_until(process, lambda line: "tool_execution_completed" in line)
        finally:
            process.kill()
            await process.wait()
            script.unlink()
    assert "operationId: 'op-1'" in "".join(lines)
