"""The short ways of a request (the view's for HTTP, ``pipeline.run`` for execution) answer
exactly as Strawberry's own view and ``Schema.execute`` with our extensions: every
request here goes to both, and the status, the headers and the bytes must be the same."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
import strawberry
from starlette.applications import Starlette
from strawberry.extensions import DisableIntrospection, MaskErrors

from sessiongraph.app import create_app
from sessiongraph.config import Settings, token_digest
from sessiongraph.graphql import compat
from sessiongraph.graphql.documents import DocumentCache
from sessiongraph.graphql.errors import ErrorShapes
from sessiongraph.graphql.limits import RequestLimits
from sessiongraph.graphql.schema import Schema, build_schema
from tests.helpers import insert_session

QUERY = "{ sessions(first: 2) { totalCount nodes { id status } } }"
HASH = hashlib.sha256(QUERY.encode()).hexdigest()
PERSISTED = {"persistedQuery": {"version": 1, "sha256Hash": HASH}}

#: (method, query string, headers, body): what both ways are sent, in this order.
Request = tuple[str, dict[str, str] | None, dict[str, str], bytes | None]


def post(body: Any, content_type: str = "application/json", **headers: str) -> Request:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return "POST", None, {"content-type": content_type, **headers}, raw


def get(params: dict[str, str], **headers: str) -> Request:
    return "GET", params, headers, None


REQUESTS: dict[str, Request] = {
    "query": post({"query": QUERY}),
    "typename": post({"query": "{ __typename }"}),
    "variables": post(
        {
            "query": "query ($n: Int!) { sessions(first: $n) { nodes { id } } }",
            "variables": {"n": 1},
        }
    ),
    "variables, defaulted": post(
        {"query": "query ($n: Int = 1) { sessions(first: $n) { nodes { id } } }"}
    ),
    "variables that do not coerce": post(
        {
            "query": "query ($n: Int!) { sessions(first: $n) { nodes { id } } }",
            "variables": {"n": "many"},
        }
    ),
    "a variable missing": post(
        {"query": "query ($n: Int!) { sessions(first: $n) { totalCount } }"}
    ),
    "a number past 64 bits": post(
        b'{"query": "query ($n: Int!) { sessions(first: $n) { totalCount } }",'
        b' "variables": {"n": 123456789012345678901234}}'
    ),
    "named operation": post(
        {
            "query": "query A { __typename } query B { sessions { totalCount } }",
            "operationName": "B",
        }
    ),
    "first of several, unnamed": post(
        {"query": "query A { sessions { totalCount } } query B { __typename }"}
    ),
    "unknown operation name": post({"query": "query A { __typename }", "operationName": "Z"}),
    "only fragments": post({"query": "fragment F on Query { __typename }"}),
    "no query": post({"variables": {}}),
    "a null query": post({"query": None}),
    "an empty query": post({"query": ""}),
    "syntax error": post({"query": "{ sessions { "}),
    "too many tokens": post({"query": "{ " + "__typename " * 1200 + "}"}),
    "unknown field, with a suggestion": post({"query": "{ sesions { totalCount } }"}),
    "validation error, cached the second time": post({"query": "{ sesions { totalCount } }"}),
    "over the cost budget": post(
        {"query": "{ sessions(first: 1000) { nodes { operations(first: 1000) { totalCount } } } }"}
    ),
    "too many aliases": post(
        {"query": "{ " + " ".join(f"a{i}: __typename" for i in range(20)) + " }"}
    ),
    "a field error": post({"query": '{ session(id: "") { id } }'}),
    "a mutation refused by validation": post(
        {"query": "mutation { startSession(input: {nope: 1}) { id } }"}
    ),
    "a mutation of nothing": post(
        {"query": 'mutation { completeSession(id: "nope", status: COMPLETED) { id } }'}
    ),
    "a subscription over HTTP": post({"query": "subscription { sessionUpdated { id } }"}),
    "introspection": post({"query": "{ __schema { queryType { name } } }"}),
    "a JSON charset": post({"query": QUERY}, "application/json; charset=utf-8"),
    "an upper-case media type": post({"query": QUERY}, "Application/JSON"),
    "a JSON-ish media type": post({"query": QUERY}, "application/graphql-response+json"),
    "text": post({"query": QUERY}, "text/plain"),
    "multipart": post(b"--x--", "multipart/form-data; boundary=x"),
    "not JSON": post(b"{nope"),
    "a batch when batching is off": post([{"query": QUERY}]),
    "a persisted query, unknown": post({"extensions": PERSISTED}),
    "a persisted query, registered": post({"query": QUERY, "extensions": PERSISTED}),
    "a persisted query, by hash": post({"extensions": PERSISTED}),
    "a persisted query, wrong hash": post({"query": "{ __typename }", "extensions": PERSISTED}),
    "GET": get({"query": QUERY}),
    "GET, variables": get(
        {
            "query": "query ($n: Int!) { sessions(first: $n) { totalCount } }",
            "variables": '{"n": 1}',
        }
    ),
    "GET, blank variables": get({"query": QUERY, "variables": ""}),
    "GET, a persisted query by hash": get({"extensions": json.dumps(PERSISTED)}),
    "GET, a mutation": get(
        {"query": 'mutation { completeSession(id: "nope", status: COMPLETED) { id } }'}
    ),
    "GET, no query": get({}, accept="application/json"),
    "GraphiQL": get({}, accept="text/html"),
    "HEAD": ("HEAD", {"query": QUERY}, {}, None),
    "PUT": ("PUT", None, {"content-type": "application/json"}, b"{}"),
}

Both = Callable[..., AbstractAsyncContextManager[tuple[httpx.AsyncClient, httpx.AsyncClient]]]


@pytest.fixture
def both(settings: Settings, app: Starlette) -> Both:
    """Two apps on the same (emptied) database, with these settings changed: one with
    its short ways (as ``serve`` runs it), one with Strawberry's own."""

    @asynccontextmanager
    async def clients(**changes: Any) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
        lean, plain = (
            create_app(settings.model_copy(update=changes)),
            create_app(settings.model_copy(update=changes)),
        )
        plain.state.schema.lean = False
        assert lean.state.schema.lean
        async with (
            lean.router.lifespan_context(lean),
            plain.router.lifespan_context(plain),
            httpx.AsyncClient(transport=httpx.ASGITransport(lean), base_url="http://t") as a,
            httpx.AsyncClient(transport=httpx.ASGITransport(plain), base_url="http://t") as b,
        ):
            yield a, b

    return clients


async def _send(client: httpx.AsyncClient, request: Request) -> httpx.Response:
    method, params, headers, body = request
    return await client.request(method, "/graphql", params=params, headers=headers, content=body)


async def _same(
    lean: httpx.AsyncClient, plain: httpx.AsyncClient, requests: dict[str, Request]
) -> None:
    for name, request in requests.items():
        ours, theirs = await _send(lean, request), await _send(plain, request)
        assert (ours.status_code, ours.headers.raw, ours.content) == (
            theirs.status_code,
            theirs.headers.raw,
            theirs.content,
        ), f"{name}: the two ways differ\n{ours.text[:600]}\n{theirs.text[:600]}"


async def test_every_request_is_answered_the_same_both_ways(
    both: Both, engine: Any, caplog: pytest.LogCaptureFixture
) -> None:
    await insert_session(engine, status="running")
    await insert_session(engine)

    async with both() as (lean, plain):
        await _same(lean, plain, REQUESTS)

    # The two ways logged the same (nothing unexpected happened).
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_in_production_the_same_both_ways(both: Both) -> None:
    # Suggestions cut, introspection refused, GraphiQL not served.
    async with both(env="production") as (lean, plain):
        await _same(lean, plain, REQUESTS)


async def test_limits_are_the_same_both_ways(both: Both) -> None:
    requests = {
        "too deep": post({"query": "{ sessions { nodes { workflow { id } } } }"}),
        "over the cost budget": post({"query": "{ sessions(first: 20) { totalCount } }"}),
        "too many aliases": post({"query": "{ a: __typename b: __typename }"}),
        "too many directives": post(
            {"query": "{ __typename @include(if: true) @skip(if: false) }"}
        ),
        "a limit measured with variables": post(
            {
                "query": "query ($n: Int!) { sessions(first: $n) { totalCount } }",
                "variables": {"n": 20},
            }
        ),
        "within the limits": post({"query": "{ sessions(first: 2) { totalCount } }"}),
    }
    async with both(max_depth=2, cost_budget=10, max_aliases=1, max_directives=1) as (lean, plain):
        await _same(lean, plain, requests)


async def test_batches_are_answered_the_same_both_ways(both: Both) -> None:
    batch = [
        {"query": QUERY},
        {"query": "{ sesions { totalCount } }"},
        {"query": "query A { __typename }", "operationName": "A"},
        {"extensions": PERSISTED},
    ]
    requests = {
        "a batch": post(batch),
        "a batch with an unknown operation": post(
            [*batch, {"query": "{ a }", "operationName": "Z"}]
        ),
        "a batch of one": post([{"query": "{ __typename }"}]),
        "a batch over the cost budget together": post(
            [{"query": "{ sessions(first: 100) { nodes { operations(first: 300) { id } } } }"}] * 2
        ),
        "a batch of several operations without a name": post(
            [{"query": "query A { __typename } query B { __typename }"}]
        ),
    }
    async with both(batching=True) as (lean, plain):
        await _same(lean, plain, requests)


async def test_tokens_and_read_only_callers_the_same_both_ways(both: Both) -> None:
    writer, reader = "a-writer-token-of-some-length", "a-reader-token-of-some-length"
    mutation = post(
        {"query": 'mutation { completeSession(id: "nope", status: COMPLETED) { id } }'},
        authorization=f"Bearer {reader}",
    )
    requests = {
        "no token": post({"query": QUERY}),
        "a wrong token": post({"query": QUERY}, authorization="Bearer wrong"),
        "a reader": post({"query": QUERY}, authorization=f"Bearer {reader}"),
        "a reader's mutation": mutation,
        "a writer, by GET": get({"query": QUERY}, authorization=f"Bearer {writer}"),
    }
    async with both(
        token_sha256=[token_digest(writer)], read_only_token_sha256=[token_digest(reader)]
    ) as (lean, plain):
        await _same(lean, plain, requests)


async def test_an_exception_in_a_step_is_the_same_both_ways(
    both: Both, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a limit check that fails (a bug): the pipeline's own failure, not a resolver's
    def broken(*_: Any, **__: Any) -> Any:
        raise ValueError("boom: a server bug")

    monkeypatch.setattr("sessiongraph.graphql.limits.measure", broken)
    async with both() as (lean, plain):
        await _same(lean, plain, {"query": post({"query": QUERY})})

    failures = [r for r in caplog.records if r.exc_info and r.exc_info[0] is ValueError]
    assert len(failures) == 2  # logged once by each way


def test_the_short_ways_are_on_where_the_libraries_allow(settings: Settings) -> None:
    assert compat.missing_for_pipeline() == []
    assert compat.missing_for_view() == []
    assert build_schema(settings).lean
    assert build_schema(settings.model_copy(update={"env": "production"})).lean


def test_a_schema_with_other_extensions_runs_strawberrys_pipeline(settings: Settings) -> None:
    # The pipeline does what our extensions do, all of them, and nothing of any other.
    @strawberry.type
    class Query:
        answer: int = 42

    ours = [RequestLimits, DocumentCache, ErrorShapes]

    assert Schema(settings, query=Query, extensions=ours).lean
    assert Schema(settings, query=Query, extensions=[*ours, DisableIntrospection]).lean
    assert not Schema(settings, query=Query, extensions=[*ours, MaskErrors]).lean
    assert not Schema(settings, query=Query, extensions=[ErrorShapes]).lean
    assert not Schema(settings, query=Query, extensions=ours[::-1]).lean


def test_a_missing_internal_turns_the_short_ways_off_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, settings: Settings
) -> None:
    # Given a strawberry release that moved a function the pipeline calls
    import strawberry.schema.schema

    monkeypatch.delattr(strawberry.schema.schema, "validate_document")

    schema = build_schema(settings)

    assert not schema.lean
    assert "strawberry.schema.schema:validate_document" in caplog.text
