"""Which errors are the client's (shown as they are) and which the server's (masked, logged)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

import pytest
from graphql import GraphQLError, GraphQLScalarType, build_schema, is_specified_scalar_type, parse
from starlette.applications import Starlette
from strawberry.types.scalar import ScalarDefinition

from sessiongraph.db import queries
from sessiongraph.errors import BadUserInput
from sessiongraph.graphql import documents, subscriptions
from sessiongraph.graphql.errors import INTERNAL_MESSAGE, is_unexpected, shape_error
from sessiongraph.graphql.scalars import SCALAR_MAP
from tests.helpers import GraphQLClient
from tests.live import WSClient, serve

SESSION = '{ session(id: "s-1") { id } }'
FAILURES = [TypeError, ValueError, RuntimeError]


def failing(kind: type[Exception]) -> Callable[..., NoReturn]:
    def fail(*_: Any, **__: Any) -> NoReturn:
        raise kind("boom: a server bug")

    return fail


def logged(caplog: pytest.LogCaptureFixture, kind: type[Exception]) -> list[logging.LogRecord]:
    """The ERROR records with ``kind`` and its traceback."""
    return [
        record
        for record in caplog.records
        if record.levelno == logging.ERROR
        and record.exc_info is not None
        and record.exc_info[0] is kind
        and record.exc_info[2] is not None
    ]


def assert_masked(error: dict[str, Any]) -> None:
    assert error["message"] == INTERNAL_MESSAGE
    assert error["extensions"] == {"code": "INTERNAL"}
    assert "boom" not in str(error)


@pytest.mark.parametrize("kind", FAILURES)
async def test_an_exception_in_a_resolver_is_internal_and_logged(
    gql: GraphQLClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    kind: type[Exception],
) -> None:
    monkeypatch.setattr(queries, "find_sessions_by_id_or_prefix", failing(kind))

    error = await gql.error(SESSION, code="INTERNAL")

    assert_masked(error)
    assert error["path"] == ["session"]
    assert logged(caplog, kind)


@pytest.mark.parametrize("kind", FAILURES)
async def test_an_exception_outside_any_resolver_is_internal_and_logged(
    gql: GraphQLClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    kind: type[Exception],
) -> None:
    # Raised while the document is read, before execution: the error has no path.
    monkeypatch.setattr(documents, "parsed", failing(kind))

    error = await gql.error("{ sessions { totalCount } }", code="INTERNAL")

    assert_masked(error)
    assert "path" not in error
    assert logged(caplog, kind)


@pytest.mark.parametrize("kind", FAILURES)
async def test_a_failing_subscription_stream_is_internal_and_logged(
    app: Starlette,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    kind: type[Exception],
) -> None:
    monkeypatch.setattr(queries, "fetch_session", failing(kind))

    async with serve(app) as url, WSClient.open(url) as client:
        sub = await client.subscribe('subscription { sessionUpdated(id: "s-1") { id } }')
        reply = await client.receive()

    assert reply["id"] == sub, reply
    [error] = reply["payload"]["errors"]
    assert_masked(error)
    assert logged(caplog, kind)


@pytest.mark.parametrize("kind", FAILURES)
async def test_a_subscription_failing_before_it_streams_is_internal_and_logged(
    app: Starlette,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    kind: type[Exception],
) -> None:
    # Raised by the stream's first step, outside the resolver's own error handling: the
    # error reaches Strawberry from the event stream, with no path.
    monkeypatch.setattr(subscriptions, "check_id", failing(kind))

    async with serve(app) as url, WSClient.open(url) as client:
        sub = await client.subscribe('subscription { sessionUpdated(id: "s-1") { id } }')
        reply = await client.receive()

    assert reply["id"] == sub, reply
    [error] = reply["payload"]["errors"]
    assert_masked(error)
    assert "path" not in error
    assert logged(caplog, kind)


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        pytest.param('{ sessions(startedAfter: "soon") { totalCount } }', None, id="literal"),
        pytest.param('{ sessions(startedAfter: ["x"]) { totalCount } }', None, id="literal-list"),
        pytest.param(
            "query ($t: DateTime) { sessions(startedAfter: $t) { totalCount } }",
            {"t": "2026-13-45"},
            id="variable",
        ),
        pytest.param(
            "query ($t: DateTime) { sessions(startedAfter: $t) { totalCount } }",
            {"t": 17},
            id="variable-of-another-type",
        ),
        pytest.param(
            'mutation { completeSession(id: "s", status: COMPLETED, totalCostUsd: "x") { id } }',
            None,
            id="decimal-literal",
        ),
        pytest.param(
            "mutation ($c: [ModelCostInput!]) {"
            ' completeSession(id: "s", status: COMPLETED, costByModel: $c) { id } }',
            {"c": [{"model": "m", "costUsd": "NaN"}]},
            id="decimal-in-a-list-of-inputs",
        ),
    ],
)
async def test_bad_input_to_a_custom_scalar_is_the_clients_mistake(
    gql: GraphQLClient,
    caplog: pytest.LogCaptureFixture,
    query: str,
    variables: dict[str, Any] | None,
) -> None:
    error = await gql.error(query, variables, code="BAD_USER_INPUT")

    assert "must be" in error["message"]
    assert "path" not in error
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


def test_every_custom_scalar_of_the_schema_is_one_of_ours() -> None:
    sdl = build_schema((Path(__file__).parents[1] / "schema.graphql").read_text("utf-8"))
    custom = {
        name
        for name, t in sdl.type_map.items()
        if isinstance(t, GraphQLScalarType) and not is_specified_scalar_type(t)
    }

    assert custom == {scalar.name for scalar in SCALAR_MAP.values()}


@pytest.mark.parametrize("scalar", SCALAR_MAP.values(), ids=lambda scalar: scalar.name)
@pytest.mark.parametrize(
    "value", ["", "x", "nan", "1e999999999", 1e400, True, 3, [], {}, None, Decimal("NaN")]
)
def test_a_custom_scalar_refuses_a_value_with_bad_user_input_only(
    scalar: ScalarDefinition, value: object
) -> None:
    """What keeps bad input the client's: a scalar raising, say, ValueError would make
    it look like a failure of the server."""
    assert scalar.parse_value is not None
    with contextlib.suppress(BadUserInput):
        scalar.parse_value(value)


@pytest.mark.parametrize(
    ("error", "unexpected"),
    [
        (GraphQLError("Syntax Error: Unexpected <EOF>."), False),
        (GraphQLError("Cannot query field 'nope' on type 'Query'."), False),
        (GraphQLError("Cannot return null for non-nullable field.", path=["a"]), True),
        (GraphQLError("boom", original_error=TypeError("boom")), True),
        (GraphQLError("boom", original_error=ValueError("boom")), True),
        (GraphQLError("boom", path=["a"], original_error=ValueError("boom")), True),
        (GraphQLError("x", original_error=GraphQLError("x", original_error=TypeError())), True),
        (
            GraphQLError("x", original_error=GraphQLError("x", original_error=BadUserInput("x"))),
            False,
        ),
        (GraphQLError("x", path=["a"], original_error=BadUserInput("x")), False),
        (GraphQLError("x", extensions={"code": "QUERY_TOO_COMPLEX"}), False),
    ],
)
def test_is_unexpected_blames_the_server_for_every_exception_but_ours(
    error: GraphQLError, unexpected: bool
) -> None:
    assert is_unexpected(error) is unexpected
    shaped = shape_error(error).formatted
    assert shaped["extensions"]["code"] == (
        "INTERNAL" if unexpected else (error.extensions or {}).get("code", "BAD_USER_INPUT")
    )


def test_a_document_error_keeps_its_message() -> None:
    with pytest.raises(GraphQLError) as raised:
        parse("{ sessions {")

    shaped = shape_error(raised.value).formatted

    assert shaped["extensions"] == {"code": "BAD_USER_INPUT"}
    assert shaped["message"].startswith("Syntax Error")


async def test_an_unknown_operation_name_over_websocket_is_the_clients_mistake(
    app: Starlette, caplog: pytest.LogCaptureFixture
) -> None:
    async with serve(app) as url, WSClient.open(url) as client:
        payload = {"query": "query A { __typename }", "operationName": "B"}
        await client.send({"id": "1", "type": "subscribe", "payload": payload})
        reply = await client.receive()
        after = await client.subscribe("{ __typename }")  # the connection stays usable
        assert await client.next(after) == {"__typename": "Query"}

    assert reply == {
        "id": "1",
        "type": "error",
        "payload": [
            {"message": 'Unknown operation named "B".', "extensions": {"code": "BAD_USER_INPUT"}}
        ],
    }
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
