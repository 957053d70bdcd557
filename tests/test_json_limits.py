"""JSON nesting and size limits at every entrance (HTTP body, GET variables, WebSocket
message, JSON arguments, import), and reads that never fail on what is stored: values
nested deeper than any limit, and counts beyond an Int, written by SQL."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from websockets.exceptions import ConnectionClosed

from sessiongraph import cli
from sessiongraph.app import create_app
from sessiongraph.config import Settings
from sessiongraph.jsontext import OMITTED_KEY, READABLE_DEPTH
from tests.conftest import Configured
from tests.helpers import T0, GraphQLClient, insert_operations, insert_session, operation_row
from tests.live import WSClient, serve

START = """mutation ($id: String!, $m: JSON) {
  startSession(input: {id: $id, status: RUNNING, metadata: $m}) { id metadata } }"""
RECORD = """mutation ($id: String!, $ops: [OperationInput!]!) {
  recordOperations(sessionId: $id, operations: $ops) { recordedOperationIds } }"""
PAGE = "{ sessions(orderBy: {field: STARTED_AT, direction: ASC}) { nodes { id metadata } } }"
TOKENS = """{ sessions(orderBy: {field: STARTED_AT, direction: ASC}) { nodes { id inputTokens
  outputTokens cacheCreationTokens cacheReadTokens totalTokens totalTokensDisplay
  cacheHitRatio } } }"""
OPERATIONS = """query ($id: String!) { session(id: $id) { operations { nodes {
  operationId toolInput git { sha } } } } }"""
SESSION_UPDATED = "subscription ($id: String!) { sessionUpdated(id: $id) { id status } }"
INT_MAX = 2**31 - 1


def nested(levels: int) -> Any:
    """A value ``levels`` deep: ``{"a": {"a": ... {}}}`` (``{}`` is one level)."""
    value: Any = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def nested_text(levels: int, inner: str = "1") -> str:
    """JSON text of a list ``levels`` deep around ``inner``, built without recursion."""
    return "[" * levels + inner + "]" * levels


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logged = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not logged, [r.getMessage()[:300] for r in logged]


# -- JSON arguments: stored values nest at most max_json_depth (64) ---------------------


@pytest.mark.parametrize(
    ("operation", "field"),
    [
        pytest.param({"toolInput": nested(65)}, "operations[0].toolInput", id="toolInput"),
        pytest.param({"git": {"sha": "abc", "x": nested(64)}}, "operations[0].git", id="git"),
    ],
)
async def test_an_operation_value_nested_65_deep_is_refused_naming_its_field(
    gql: GraphQLClient, operation: dict[str, Any], field: str
) -> None:
    await gql(START, {"id": "s-1"})
    ops = [{"operationId": "o-1", "operationType": "tool_execution_started", **operation}]

    error = await gql.error(RECORD, {"id": "s-1", "ops": ops}, code="BAD_USER_INPUT")

    assert error["message"] == f"`{field}` nests more than 64 levels deep"
    assert error["extensions"]["field"] == field
    assert error["path"] == ["recordOperations"]


async def test_metadata_may_nest_64_levels_not_100(
    gql: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    fits = await gql(START, {"id": "s-64", "m": nested(64)})
    # within the body's limit (128): the stored value's (64) refuses it
    error = await gql.error(START, {"id": "s-100", "m": nested(100)}, code="BAD_USER_INPUT")

    assert fits["startSession"]["metadata"] == nested(64)
    assert error["message"] == "`input.metadata` nests more than 64 levels deep"
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.metadata"}
    no_tracebacks(caplog)


async def test_the_stored_depth_is_a_setting(configured: Configured) -> None:
    async with configured(max_json_depth=3) as http:
        fits = await http.post(
            "/graphql", json={"query": START, "variables": {"id": "a", "m": nested(3)}}
        )
        deeper = await http.post(
            "/graphql", json={"query": START, "variables": {"id": "b", "m": nested(4)}}
        )

    assert "errors" not in fits.json()
    [error] = deeper.json()["errors"]
    assert error["message"] == "`input.metadata` nests more than 3 levels deep"


def test_settings_keep_room_in_a_body_for_a_stored_value() -> None:
    with pytest.raises(ValueError, match="max_request_json_depth"):
        Settings(max_json_depth=200, max_request_json_depth=128)


# -- Whole bodies: nested at most max_request_json_depth (128), refused before parsing --


@pytest.mark.parametrize(
    "levels",
    [
        pytest.param(129, id="just-past-the-limit"),
        pytest.param(1_000, id="1000"),
        pytest.param(100_000, id="100000"),
    ],
)
@pytest.mark.parametrize("long_number", [False, True], ids=["plain", "long-number"])
async def test_a_deep_body_is_a_400_in_the_graphql_shape(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, levels: int, long_number: bool
) -> None:
    # an integer past 64 bits makes Strawberry decode the body again, recursively
    inner = "12345678901234567890" if long_number else "1"
    variables = '{"id": "s", "m": {"a": ' + nested_text(levels - 3, inner) + "}}"
    body = '{"query": ' + json.dumps(START) + ', "variables": ' + variables + "}"

    response = await http.post(
        "/graphql", content=body.encode(), headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "data": None,
        "errors": [
            {
                "message": "The request body is nested more than 128 levels deep",
                "extensions": {"code": "BAD_USER_INPUT"},
            }
        ],
    }
    no_tracebacks(caplog)


async def test_the_body_limit_is_exact(http: httpx.AsyncClient) -> None:
    query = (
        'query ($m: JSON) { sessions(filter: {metadata: {key: "a", equals: $m}}) { totalCount } }'
    )

    def body(levels: int) -> bytes:
        # the body and its variables: two levels around the value
        text = '{"query": ' + json.dumps(query) + ', "variables": {"m": '
        return (text + nested_text(levels - 2) + "}}").encode()

    headers = {"content-type": "application/json"}
    at_the_limit = await http.post("/graphql", content=body(128), headers=headers)
    past_it = await http.post("/graphql", content=body(129), headers=headers)
    # brackets in strings (an escaped quote and backslash among them) are not nesting
    in_strings = json.dumps(
        {"query": query, "variables": {"m": ['\\"' + "[{" * 300, "\\", ["]}" * 300]]}}
    )
    shallow = await http.post("/graphql", content=in_strings.encode(), headers=headers)

    assert at_the_limit.json()["data"] == {"sessions": {"totalCount": 0}}
    assert past_it.status_code == 400
    assert shallow.json()["data"] == {"sessions": {"totalCount": 0}}


async def test_deep_get_variables_are_a_400(http: httpx.AsyncClient) -> None:
    response = await http.get(
        "/graphql", params={"query": "{ sessions { totalCount } }", "variables": nested_text(5000)}
    )

    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["message"] == "`variables` is nested more than 128 levels deep"


# -- Reading what is stored: deeper than any limit, written by SQL ----------------------


async def store_json(engine: AsyncEngine, table: str, column: str, where: str, text: str) -> None:
    """Writes JSON ``text`` as SQL does, past every check of the API."""
    async with engine.begin() as conn:
        value = "CAST(:text AS jsonb)" if conn.dialect.name == "postgresql" else ":text"
        await conn.execute(
            sa.text(f"UPDATE {table} SET {column} = {value} WHERE {where}"), {"text": text}
        )


def omitted() -> dict[str, str]:
    return {
        OMITTED_KEY: f"not shown: a JSON value nested more than {READABLE_DEPTH} levels "
        "deep, stored before nesting was limited"
    }


@pytest.mark.parametrize("levels", [500, 1_000, 5_000])
async def test_a_page_holding_metadata_stored_thousands_deep_reads_with_a_placeholder(
    gql: GraphQLClient, engine: AsyncEngine, caplog: pytest.LogCaptureFixture, levels: int
) -> None:
    # given sessions, one's metadata nested ``levels`` deep by SQL, one's 200
    for index, session_id in enumerate(("before", "deep", "readable", "after")):
        started = T0 + timedelta(minutes=index)
        await insert_session(engine, id=session_id, metadata={"n": index}, started_at=started)
    readable = json.dumps(nested(READABLE_DEPTH))
    await store_json(engine, "sessions", "metadata", "id = 'readable'", readable)
    await store_json(
        engine, "sessions", "metadata", "id = 'deep'", '{"a": ' + nested_text(levels - 1) + "}"
    )

    # when a page of them is read (the fast and the plain path: gql compares them)
    data = await gql(PAGE)

    # then the page is whole, the deep value a marked placeholder, the other as stored
    assert data["sessions"]["nodes"] == [
        {"id": "before", "metadata": {"n": 0}},
        {"id": "deep", "metadata": omitted()},
        {"id": "readable", "metadata": nested(READABLE_DEPTH)},
        {"id": "after", "metadata": {"n": 3}},
    ]
    no_tracebacks(caplog)


async def test_operations_with_tool_input_and_git_stored_5000_deep_read(
    gql: GraphQLClient, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    await insert_session(engine, id="s")
    await insert_operations(
        engine,
        operation_row("s", operation_id="o-deep"),
        operation_row("s", operation_id="o-fine", tool_input={"x": 1}, git={"sha": "abc"}),
    )
    deep = '{"a": ' + nested_text(5000) + "}"
    await store_json(engine, "operations", "tool_input", "operation_id = 'o-deep'", deep)
    await store_json(engine, "operations", "git", "operation_id = 'o-deep'", deep)

    data = await gql(OPERATIONS, {"id": "s"})

    assert data["session"]["operations"]["nodes"] == [
        {"operationId": "o-deep", "toolInput": omitted(), "git": {"sha": None}},
        {"operationId": "o-fine", "toolInput": {"x": 1}, "git": {"sha": "abc"}},
    ]
    no_tracebacks(caplog)


# -- Reading counts an Int cannot carry, written by SQL ---------------------------------


async def test_session_counts_beyond_an_int_read_saturated_and_the_page_survives(
    gql: GraphQLClient, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    await insert_session(
        engine, id="big", input_tokens=3_000_000_000, total_tokens=2**40, cache_read_tokens=2**31
    )
    await insert_session(
        engine, id="small", input_tokens=10, total_tokens=10, started_at=T0 + timedelta(hours=1)
    )

    data = await gql(TOKENS)

    assert data["sessions"]["nodes"] == [
        {
            "id": "big",
            "inputTokens": INT_MAX,
            "outputTokens": 0,
            "cacheCreationTokens": 0,
            "cacheReadTokens": INT_MAX,
            "totalTokens": INT_MAX,
            "totalTokensDisplay": "2147.5M",
            "cacheHitRatio": 0.5,
        },
        {
            "id": "small",
            "inputTokens": 10,
            "outputTokens": 0,
            "cacheCreationTokens": 0,
            "cacheReadTokens": 0,
            "totalTokens": 10,
            "totalTokensDisplay": "10",
            "cacheHitRatio": 0.0,
        },
    ]
    no_tracebacks(caplog)


async def test_operation_counts_beyond_an_int_read_saturated(
    gql: GraphQLClient, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    await insert_session(engine, id="s")
    await insert_operations(
        engine,
        operation_row(
            "s", operation_id="o-1", input_tokens=2**35, output_tokens=5, total_tokens=None
        ),
        operation_row("s", operation_id="o-2", input_tokens=-(2**40), output_tokens=1),
    )

    data = await gql(
        """{ session(id: "s") { operations { nodes { operationId inputTokens outputTokens
        totalTokens } } } }"""
    )

    assert data["session"]["operations"]["nodes"] == [
        {"operationId": "o-1", "inputTokens": INT_MAX, "outputTokens": 5, "totalTokens": None},
        {"operationId": "o-2", "inputTokens": -(2**31), "outputTokens": 1, "totalTokens": None},
    ]
    no_tracebacks(caplog)


# -- WebSocket messages: the same checks as HTTP bodies ---------------------------------


@asynccontextmanager
async def live(settings: Settings, **changes: Any) -> AsyncIterator[str]:
    other = create_app(settings.model_copy(update=changes))
    async with other.router.lifespan_context(other), serve(other) as url:
        yield url


@pytest.fixture
async def url(app: Starlette) -> AsyncIterator[str]:
    async with serve(app) as url:
        yield url


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            b'{"query": "{ sessions { totalCount } }", "variables": {"x": "\\ud800"}}',
            "The request body holds a lone UTF-16 surrogate (\\ud800 to \\udfff), not Unicode text",
            id="lone-surrogate",
        ),
        pytest.param(
            b'{"query": "{ sessions { totalCount } }", "variables": {"x": "\xff"}}',
            "The request body is not UTF-8 text",
            id="not-utf8",
        ),
    ],
)
async def test_a_body_that_is_not_unicode_is_a_400_saying_why(
    http: httpx.AsyncClient, content: bytes, message: str
) -> None:
    response = await http.post(
        "/graphql", content=content, headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error == {"message": message, "extensions": {"code": "BAD_USER_INPUT"}}


async def test_a_lone_surrogate_in_websocket_variables_is_that_operations_error(
    url: str, gql: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    await gql(START, {"id": "s-1"})
    payload = json.dumps({"query": SESSION_UPDATED, "variables": {"id": "s-1"}})
    payload = payload.replace('"s-1"', '"s-\\ud800"')
    message = '{"id": "7", "type": "subscribe", "payload": ' + payload + "}"

    async with WSClient.open(url) as client:
        await client.ws.send(message)
        refused = await client.receive()
        # and the connection goes on
        sub = await client.subscribe(SESSION_UPDATED, {"id": "s-1"})
        first = await client.next(sub)

    assert refused == {
        "id": "7",
        "type": "error",
        "payload": [
            {
                "message": "The message holds a lone UTF-16 surrogate (\\ud800 to \\udfff), "
                "not Unicode text",
                "extensions": {"code": "BAD_USER_INPUT"},
            }
        ],
    }
    assert first == {"sessionUpdated": {"id": "s-1", "status": "RUNNING"}}
    no_tracebacks(caplog)


async def close_of(client: WSClient) -> tuple[int | None, str | None]:
    """The code and reason the server closed the connection with (None: no close frame)."""
    with pytest.raises(ConnectionClosed) as closed:
        await client.receive()
    frame = closed.value.rcvd
    return (frame.code, frame.reason) if frame is not None else (None, None)


@pytest.mark.parametrize("levels", [129, 5_000, 100_000])
async def test_a_deep_websocket_message_closes_with_4400(
    url: str, caplog: pytest.LogCaptureFixture, levels: int
) -> None:
    variables = '{"x": ' + nested_text(levels - 3) + "}"
    payload = '{"query": ' + json.dumps(SESSION_UPDATED) + ', "variables": ' + variables + "}"

    async with WSClient.open(url) as client:
        await client.ws.send('{"id": "1", "type": "subscribe", "payload": ' + payload + "}")
        closed = await close_of(client)

    assert closed == (4400, "The message is nested more than 128 levels deep")
    no_tracebacks(caplog)


async def test_a_websocket_message_over_the_body_limit_closes_with_4400(settings: Settings) -> None:
    async with live(settings, max_body_bytes=4096) as url, WSClient.open(url) as client:
        await client.subscribe(SESSION_UPDATED, {"id": "x" * 5000})
        closed = await close_of(client)

    assert closed == (4400, "The message is over 4096 bytes")


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        pytest.param("[1]", "The message must be a JSON object", id="list"),
        pytest.param('"subscribe"', "The message must be a JSON object", id="string"),
        pytest.param("{", "The message is not valid JSON", id="not-json"),
    ],
)
async def test_a_websocket_message_that_is_not_an_object_closes_with_4400(
    url: str, message: str, reason: str
) -> None:
    async with WSClient.open(url) as client:
        await client.ws.send(message)
        code, text = await close_of(client)

    assert code == 4400
    assert text is not None
    assert text.startswith(reason)


# -- Import: the same setting -----------------------------------------------------------


async def test_import_takes_the_stored_depth_setting(
    gql: GraphQLClient,
    settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def record(session_id: str, metadata: Any) -> str:
        return json.dumps({"id": session_id, "status": "running", "metadata": metadata})

    path = tmp_path / "s.jsonl"
    path.write_text(record("fits", nested(3)) + "\n" + record("deep", nested(4)) + "\n")
    monkeypatch.setenv("SESSIONGRAPH_MAX_JSON_DEPTH", "3")
    monkeypatch.setenv("SESSIONGRAPH_MAX_REQUEST_JSON_DEPTH", "16")

    capsys.readouterr()
    argv = ["import", str(path), "--database-url", settings.database_url]
    status = await asyncio.to_thread(cli.main, argv)
    err = capsys.readouterr().err

    assert status == 3, err
    assert "line 2: `metadata` nests more than 3 levels deep" in err
    data = await gql("{ sessions { nodes { id } } }")
    assert data["sessions"]["nodes"] == [{"id": "fits"}]
