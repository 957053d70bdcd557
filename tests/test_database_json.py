"""Pages of operations whose JSON PostgreSQL writes: the same bytes as Python writes.

Each query here goes through ``gql``, which sends it to the app with the compiled path
(where PostgreSQL builds the JSON of a page of plain columns) and to the app without
it (Python completes every value), and fails unless the two responses are identical.
The values are the ones whose text differs by default between PostgreSQL and Python:
floats in every layout, timestamps with and without microseconds, escapes, NULLs.
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from sessiongraph.node_ids import operation_node_id
from tests.helpers import (
    T0,
    GraphQLClient,
    insert_operations,
    insert_session,
    is_plan_setting,
    operation_row,
)
from tests.test_compiled import EXAMPLES, documents, varied  # noqa: F401 (a fixture)

pytestmark = pytest.mark.postgres_only

FIELDS = "id operationId operationType timestamp durationSeconds success toolName inputTokens"


#: Doubles from here on are integers, which PostgreSQL writes differently now and then.
BIG = 2.0**53


def _floats() -> list[float]:
    """Doubles in every layout orjson and PostgreSQL write, below ``BIG``."""
    chosen = [0.0, -0.0, 1.0, -1.0, 0.5, 100.0, 123.456, 5e-324, 2.5e-308, BIG - 1, 1 - BIG]
    for exponent in range(-12, 16):
        for mantissa in ("1", "1.234", "-1.25", "9.999999999999999", "1.2345678901234567"):
            value = float(f"{mantissa}e{exponent}")
            if abs(value) < BIG:
                chosen.append(value)
    draw = random.Random(12)
    while len(chosen) < 500:  # any bit pattern of a finite double below BIG
        value = struct.unpack("<d", draw.getrandbits(64).to_bytes(8, "little"))[0]
        if math.isfinite(value) and abs(value) < BIG:
            chosen.append(value)
    while len(chosen) < 900:  # durations as they come: a few decimals
        chosen.append(round(draw.uniform(0, 10_000), draw.randint(0, 6)))
    return chosen


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_c: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not is_plan_setting(statement):
            seen.append(statement)

    sa.event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", record)


def _built_by_the_database(seen: list[str]) -> bool:
    """The pages were read as JSON only: no page of operations was read as rows."""
    pages = [statement for statement in seen if "LATERAL" in statement]
    return bool(pages) and all("string_agg" in statement for statement in pages)


async def test_floats_in_every_layout_are_written_as_python_writes_them(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    await insert_session(engine, id="s-1")
    values = _floats()
    rows = [
        operation_row("s-1", timestamp=T0 + timedelta(seconds=i), duration_seconds=value)
        for i, value in enumerate(values)
    ]
    await insert_operations(engine, *rows)

    with statements(engine) as seen:
        data = await gql(
            '{ session(id: "s-1") { operations(first: 1000) { nodes { durationSeconds } } } }'
        )

    assert _built_by_the_database(seen)
    read = [node["durationSeconds"] for node in data["session"]["operations"]["nodes"]]
    assert read == values


async def test_timestamps_strings_and_nulls_are_written_as_python_writes_them(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    await insert_session(engine, id="s-1")
    await insert_session(engine, id="s-2")
    moments = [
        T0,
        T0.replace(microsecond=1),
        T0.replace(microsecond=999999),
        datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 58, 999999, tzinfo=UTC),
        None,
    ]
    texts = [
        "",
        "plain",
        'quote " and \\ back',
        "\x01\x08\t\n\x0c\r\x1f\x7f",
        "é ü 漢字 🎉",
        "\u2028",
    ]
    rows = [
        operation_row(
            session,
            operation_id=f"{session}-{i}",
            operation_type=texts[i % len(texts)] or "x",
            timestamp=moments[i % len(moments)],
            tool_name=None if i % 3 == 0 else texts[i % len(texts)],
            success=i % 2 == 0,
            input_tokens=None if i % 4 == 0 else i - 20,
        )
        for session in ("s-1", "s-2")
        for i in range(40)
    ]
    await insert_operations(engine, *rows)

    with statements(engine) as seen:
        await gql(
            "{ sessions { nodes { id operations(first: 30) { __typename nodes { "
            f"__typename {FIELDS} again: operationId }} }} }} }} }}"
        )
        await gql(
            '{ session(id: "s-2") { operations(first: 50, after: null, success: true) '
            f"{{ nodes {{ {FIELDS} }} }} }} }}"
        )

    assert _built_by_the_database(seen)


async def test_operation_global_ids_are_written_as_python_writes_them(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    await insert_session(engine, id="s-1")
    # Every length modulo 3 (the padding left out), the two characters base64url swaps
    # (">>>" and "???" are "Pj4-" and "Pz8_"), several bytes per character, and ids long
    # enough that PostgreSQL's base64 breaks lines (every 76 characters).
    ids = ["a", "ab", "abc", ">>>", "???", "~~~~", "é", "漢字", "🎉", "x" * 128, "é" * 128]
    ids += ["a+b/c=d", "op:nested", " spaced ", "\u2028"]
    rows = [
        operation_row("s-1", operation_id=operation_id, timestamp=T0 + timedelta(seconds=i))
        for i, operation_id in enumerate(ids)
    ]
    await insert_operations(engine, *rows)

    with statements(engine) as seen:
        data = await gql(
            '{ session(id: "s-1") { operations { nodes { id __typename again: id } } } }'
        )

    assert _built_by_the_database(seen)
    nodes = data["session"]["operations"]["nodes"]
    assert [node["id"] for node in nodes] == [operation_node_id(i) for i in ids]
    assert all(node["again"] == node["id"] for node in nodes)


async def test_a_value_the_database_cannot_write_sends_the_page_to_python(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    await insert_session(engine, id="s-1")
    await insert_operations(
        engine,
        operation_row("s-1", input_tokens=2**40),
        operation_row("s-1", duration_seconds=float("nan")),
        operation_row("s-1", duration_seconds=1e23),
        operation_row("s-1", duration_seconds=-(BIG * 3)),
        operation_row("s-1", duration_seconds=1.5),
        # the driver writes these two as PostgreSQL's -infinity and infinity
        operation_row("s-1", timestamp=datetime.min.replace(tzinfo=UTC)),
        operation_row("s-1", timestamp=datetime.max.replace(tzinfo=UTC)),
    )

    with statements(engine) as seen:
        data = await gql('{ session(id: "s-1") { operations { nodes { inputTokens } } } }')
    # beyond GraphQL's Int: saturated, by the database as in Python
    assert {"inputTokens": 2**31 - 1} in data["session"]["operations"]["nodes"]
    assert _built_by_the_database(seen)
    with statements(engine) as seen:
        body = await gql.raw('{ session(id: "s-1") { operations { nodes { durationSeconds } } } }')
    assert body["errors"][0]["path"][-1] == "durationSeconds"  # NaN
    assert not _built_by_the_database(seen)
    with statements(engine) as seen:
        await gql('{ session(id: "s-1") { operations { nodes { timestamp } } } }')
    assert not _built_by_the_database(seen)


async def test_pages_asking_for_more_than_plain_columns_are_read_as_rows(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    await insert_session(engine, id="s-1")
    await insert_operations(engine, *(operation_row("s-1", git={"sha": "abc"}) for _ in range(3)))

    for selection in (
        "nodes { operationId git { sha } }",
        "nodes { operationId gitSha }",
        "nodes { operationId toolInput }",
        "nodes { operationId } pageInfo { hasNextPage endCursor }",
        "nodes { operationId } totalCount",
        "edges { cursor node { operationId } }",
        "nodes { operationId } again: nodes { timestamp }",
    ):
        with statements(engine) as seen:
            await gql(f'{{ session(id: "s-1") {{ operations(first: 2) {{ {selection} }} }} }}')
        assert not any("string_agg" in statement for statement in seen), selection


@settings(
    max_examples=max(EXAMPLES // 3, 10),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(document=documents(), flag=st.booleans(), n=st.sampled_from([None, 1, 3, 0]))
@pytest.mark.usefixtures("varied")
async def test_random_documents_answer_the_same_both_ways_on_postgresql(
    gql: GraphQLClient, document: str, flag: bool, n: int | None
) -> None:
    body = await gql.raw(document, {"flag": flag, "n": n})  # compares with plain execution

    assert "data" in body or "errors" in body


async def test_json_the_database_wrote_survives_the_fallback_serializer(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # An integer past 64 bits in stored JSON sends the response to the standard library.
    await insert_session(engine, id="s-1", metadata={"big": 2**70})
    await insert_operations(engine, operation_row("s-1", operation_id="op-1"))

    with statements(engine) as seen:
        data = await gql('{ session(id: "s-1") { metadata operations { nodes { operationId } } } }')

    assert _built_by_the_database(seen)
    assert data["session"] == {
        "metadata": {"big": 2**70},
        "operations": {"nodes": [{"operationId": "op-1"}]},
    }
