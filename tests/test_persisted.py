"""Persisted queries: Apollo's automatic protocol, its bounded store, and the allow-list."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from sessiongraph.app import create_app
from sessiongraph.config import Settings
from tests.conftest import Configured

QUERY = "{ sessions { totalCount } }"


def sha(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


def persisted(digest: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


async def _post(http: httpx.AsyncClient, query: str | None, digest: str) -> dict[str, Any]:
    body: dict[str, Any] = {"extensions": persisted(digest)}
    if query is not None:
        body["query"] = query
    response = await http.post("/graphql", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _code(body: dict[str, Any]) -> str:
    [error] = body["errors"]
    code: str = error["extensions"]["code"]
    return code


async def test_the_automatic_protocol_registers_then_runs_by_hash(
    http: httpx.AsyncClient,
) -> None:
    unknown = await _post(http, None, sha(QUERY))
    registered = await _post(http, QUERY, sha(QUERY))
    by_hash = await _post(http, None, sha(QUERY))
    by_get = await http.get("/graphql", params={"extensions": json.dumps(persisted(sha(QUERY)))})

    assert unknown["errors"][0]["message"] == "PersistedQueryNotFound"
    assert _code(unknown) == "PERSISTED_QUERY_NOT_FOUND"
    assert registered["data"] == by_hash["data"] == {"sessions": {"totalCount": 0}}
    assert by_get.json()["data"] == {"sessions": {"totalCount": 0}}


@pytest.mark.parametrize(
    "extensions",
    [
        {"persistedQuery": {"version": 2, "sha256Hash": sha(QUERY)}},
        {"persistedQuery": {"version": 1, "sha256Hash": "abc"}},
        {"persistedQuery": "yes"},
    ],
    ids=["version", "short-hash", "not-an-object"],
)
async def test_a_malformed_persisted_query_is_bad_user_input(
    http: httpx.AsyncClient, extensions: dict[str, Any]
) -> None:
    response = await http.post("/graphql", json={"extensions": extensions})

    assert _code(response.json()) == "BAD_USER_INPUT"


async def test_a_hash_that_is_not_the_query_s_is_refused(http: httpx.AsyncClient) -> None:
    body = await _post(http, QUERY, sha(QUERY + " "))

    assert body["errors"][0]["message"] == "provided sha does not match query"
    assert _code(body) == "BAD_USER_INPUT"


async def test_the_store_keeps_the_most_recent_queries(configured: Configured) -> None:
    queries = [f"{{ sessions(first: {n}) {{ totalCount }} }}" for n in (1, 2, 3)]
    async with configured(persisted_query_store_size=2) as http:
        for query in queries:
            await _post(http, query, sha(query))
        oldest = await _post(http, None, sha(queries[0]))
        newest = await _post(http, None, sha(queries[2]))

    assert _code(oldest) == "PERSISTED_QUERY_NOT_FOUND"
    assert newest["data"] == {"sessions": {"totalCount": 0}}


async def test_a_query_sent_by_hash_is_kept_over_older_ones(configured: Configured) -> None:
    queries = [f"{{ sessions(first: {n}) {{ totalCount }} }}" for n in (1, 2, 3)]
    async with configured(persisted_query_store_size=2) as http:
        await _post(http, queries[0], sha(queries[0]))
        await _post(http, queries[1], sha(queries[1]))
        await _post(http, None, sha(queries[0]))  # used again: now the most recent
        await _post(http, queries[2], sha(queries[2]))
        kept = await _post(http, None, sha(queries[0]))
        dropped = await _post(http, None, sha(queries[1]))

    assert kept["data"] == {"sessions": {"totalCount": 0}}
    assert _code(dropped) == "PERSISTED_QUERY_NOT_FOUND"


async def test_the_automatic_protocol_can_be_off(configured: Configured) -> None:
    async with configured(persisted_queries=False) as http:
        body = await _post(http, QUERY, sha(QUERY))

    assert body["errors"][0]["message"] == "PersistedQueryNotSupported"


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "persisted-queries.json"
    path.write_text(json.dumps({sha(QUERY): QUERY}))
    return path


async def test_the_allow_list_runs_registered_queries_only(
    configured: Configured, manifest: Path
) -> None:
    other = "{ sessions(first: 1) { totalCount } }"
    async with configured(persisted_queries_file=manifest, persisted_queries_only=True) as http:
        by_hash = await _post(http, None, sha(QUERY))
        by_text = await http.post("/graphql", json={"query": QUERY})
        unlisted_text = await http.post("/graphql", json={"query": other})
        unlisted_registration = await _post(http, other, sha(other))
        unlisted_hash = await _post(http, None, sha(other))

    assert by_hash["data"] == by_text.json()["data"] == {"sessions": {"totalCount": 0}}
    assert _code(unlisted_text.json()) == "FORBIDDEN"
    assert _code(unlisted_registration) == "FORBIDDEN"
    assert _code(unlisted_hash) == "PERSISTED_QUERY_NOT_FOUND"


def test_a_manifest_with_a_wrong_hash_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "persisted-queries.json"
    path.write_text(json.dumps({sha("{ x }"): QUERY}))

    with pytest.raises(ValueError, match="is not the SHA-256 of its query"):
        create_app(
            Settings(
                persisted_queries_file=path,
                database_url=f"sqlite+aiosqlite:///{tmp_path / 'never.db'}",
            )
        )
