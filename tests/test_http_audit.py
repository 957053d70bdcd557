"""The GraphQL-over-HTTP spec's own audit suite (graphql-http's ``serverAudits``, from
npm) against a real server: every MUST and SHOULD passes."""

from __future__ import annotations

import asyncio
import json

import pytest
from starlette.applications import Starlette

from tests import npm
from tests.live import serve


@pytest.mark.sqlite_only
async def test_every_must_and_should_of_graphql_over_http_passes(app: Starlette) -> None:
    # given a real server, and the audit suite installed
    npm.project("http-audit")
    async with serve(app) as ws_url:
        url = ws_url.replace("ws://", "http://")

        # when the audits run against it
        output = await asyncio.to_thread(npm.run, "http-audit", "audit.mjs", url, timeout=120)

    # then every audit passes, MAY ones included (none is an error or a warning)
    results = [json.loads(line) for line in output.splitlines()]
    print("\n".join(f"{r['id']} {r['status']:4} {r['name']}" for r in results))
    assert len(results) >= 60
    assert [r for r in results if r["status"] != "ok"] == []
    names = {r["name"].split(" ", 1)[0] for r in results}
    assert {"MUST", "SHOULD", "MAY"} <= names
