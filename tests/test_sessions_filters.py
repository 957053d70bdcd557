"""`sessions(...)` filters, page size, cursors, totalCount and default order (SPEC 1.1, 2)."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import (
    T0,
    GraphQLClient,
    cost,
    insert_session,
    insert_sessions,
    insert_timeline,
    insert_workflow,
    session_row,
)

HOUR = timedelta(hours=1)

SESSIONS = """
query (
  $workflowId: String, $status: SessionStatus, $statuses: [SessionStatus!],
  $startedAfter: DateTime, $startedBefore: DateTime, $first: Int, $after: String,
  $orderBy: SessionOrder
) {
  sessions(
    workflowId: $workflowId, status: $status, statuses: $statuses,
    startedAfter: $startedAfter, startedBefore: $startedBefore, first: $first,
    after: $after, orderBy: $orderBy
  ) {
    totalCount
    nodes { id }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def list_sessions(gql: GraphQLClient, **variables: Any) -> dict[str, Any]:
    connection: dict[str, Any] = (await gql(SESSIONS, variables))["sessions"]
    return connection


async def ids_of(gql: GraphQLClient, **variables: Any) -> list[str]:
    """The ids of the page, in order."""
    return [node["id"] for node in (await list_sessions(gql, **variables))["nodes"]]


def bad_user_input(body: dict[str, Any]) -> dict[str, Any]:
    """The single BAD_USER_INPUT error of ``body``; ``sessions`` (non-null) nulls ``data``."""
    assert body["data"] is None, body
    errors = body["errors"]
    assert len(errors) == 1, errors
    assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT", errors[0]
    error: dict[str, Any] = errors[0]
    return error


# --- each filter alone --------------------------------------------------------------------------


async def test_workflow_id_filter(gql: GraphQLClient, engine: AsyncEngine) -> None:
    # given
    await insert_sessions(
        engine,
        session_row(id="a1", workflow_id="wf-a", started_at=T0),
        session_row(id="b1", workflow_id="wf-b", started_at=T0 + HOUR),
        session_row(id="a2", workflow_id="wf-a", started_at=T0 + 2 * HOUR),
        session_row(id="n1", workflow_id=None, started_at=T0 + 3 * HOUR),
    )

    # when / then
    assert await ids_of(gql, workflowId="wf-a") == ["a2", "a1"]
    assert await ids_of(gql, workflowId="wf-b") == ["b1"]
    assert await ids_of(gql, workflowId="wf-unknown") == []
    assert await ids_of(gql, workflowId="WF-A") == []


async def test_status_filter_alone(gql: GraphQLClient, engine: AsyncEngine) -> None:
    # given
    await insert_sessions(
        engine,
        session_row(id="run", status="running", started_at=T0),
        session_row(id="ok1", status="completed", started_at=T0 + HOUR),
        session_row(id="bad", status="failed", started_at=T0 + 2 * HOUR),
        session_row(id="ok2", status="completed", started_at=T0 + 3 * HOUR),
        session_row(id="pen", status="pending", started_at=None),
    )

    # when / then
    assert await ids_of(gql, status="COMPLETED") == ["ok2", "ok1"]
    assert await ids_of(gql, status="FAILED") == ["bad"]
    assert await ids_of(gql, status="PENDING") == ["pen"]
    assert await ids_of(gql, status="CANCELLED") == []


async def test_status_filter_as_inline_enum_literal(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    await insert_sessions(
        engine,
        session_row(id="run", status="running"),
        session_row(id="ok", status="completed"),
    )

    # when
    data = await gql("{ sessions(status: RUNNING) { nodes { id status } totalCount } }")

    # then
    assert data == {"sessions": {"nodes": [{"id": "run", "status": "RUNNING"}], "totalCount": 1}}


async def test_statuses_filter_is_an_or(gql: GraphQLClient, engine: AsyncEngine) -> None:
    # given
    await insert_sessions(
        engine,
        session_row(id="run", status="running", started_at=T0),
        session_row(id="ok", status="completed", started_at=T0 + HOUR),
        session_row(id="bad", status="failed", started_at=T0 + 2 * HOUR),
        session_row(id="stop", status="cancelled", started_at=T0 + 3 * HOUR),
        session_row(id="pen", status="pending", started_at=T0 + 4 * HOUR),
    )

    # when / then
    assert await ids_of(gql, statuses=["FAILED", "CANCELLED"]) == ["stop", "bad"]
    assert await ids_of(gql, statuses=["RUNNING"]) == ["run"]
    assert await ids_of(gql, statuses=["PENDING", "RUNNING", "COMPLETED"]) == [
        "pen",
        "ok",
        "run",
    ]
    assert await ids_of(gql, statuses=["FAILED", "FAILED"]) == ["bad"]


async def test_started_after_filter(gql: GraphQLClient, engine: AsyncEngine) -> None:
    # given
    await insert_sessions(
        engine,
        session_row(id="early", started_at=T0 - HOUR),
        session_row(id="at", started_at=T0),
        session_row(id="late", started_at=T0 + HOUR),
        session_row(id="undated", started_at=None),
    )

    # when / then
    assert await ids_of(gql, startedAfter="2026-04-18T08:00:00+00:00") == ["late", "at"]
    assert await ids_of(gql, startedAfter="2026-04-18T08:00:01+00:00") == ["late"]
    assert await ids_of(gql, startedAfter="2026-04-18T07:00:00+00:00") == ["late", "at", "early"]


async def test_started_before_filter(gql: GraphQLClient, engine: AsyncEngine) -> None:
    # given
    await insert_sessions(
        engine,
        session_row(id="early", started_at=T0 - HOUR),
        session_row(id="at", started_at=T0),
        session_row(id="late", started_at=T0 + HOUR),
        session_row(id="undated", started_at=None),
    )

    # when / then
    assert await ids_of(gql, startedBefore="2026-04-18T08:00:00+00:00") == ["at", "early"]
    assert await ids_of(gql, startedBefore="2026-04-18T07:59:59+00:00") == ["early"]
    assert await ids_of(gql, startedBefore="2026-04-18T09:00:00+00:00") == ["late", "at", "early"]


async def test_filters_combine_with_and(gql: GraphQLClient, engine: AsyncEngine) -> None:
    # given: only "hit-1" and "hit-2" pass all four filters; each "miss" fails exactly one
    await insert_sessions(
        engine,
        session_row(id="hit-1", workflow_id="wf-a", status="failed", started_at=T0),
        session_row(id="hit-2", workflow_id="wf-a", status="running", started_at=T0 + 2 * HOUR),
        session_row(id="miss-workflow", workflow_id="wf-b", status="failed", started_at=T0 + HOUR),
        session_row(id="miss-status", workflow_id="wf-a", status="completed", started_at=T0 + HOUR),
        session_row(id="miss-early", workflow_id="wf-a", status="failed", started_at=T0 - HOUR),
        session_row(id="miss-late", workflow_id="wf-a", status="running", started_at=T0 + 3 * HOUR),
        session_row(id="miss-undated", workflow_id="wf-a", status="running", started_at=None),
    )

    # when
    connection = await list_sessions(
        gql,
        workflowId="wf-a",
        statuses=["FAILED", "RUNNING"],
        startedAfter="2026-04-18T08:00:00+00:00",
        startedBefore="2026-04-18T10:00:00+00:00",
    )

    # then
    assert [node["id"] for node in connection["nodes"]] == ["hit-2", "hit-1"]
    assert connection["totalCount"] == 2
    assert connection["pageInfo"]["hasNextPage"] is False


# --- status vs statuses -------------------------------------------------------------------------


async def test_statuses_take_precedence_over_status(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    await insert_sessions(
        engine,
        session_row(id="run", status="running", started_at=T0),
        session_row(id="ok", status="completed", started_at=T0 + HOUR),
        session_row(id="bad", status="failed", started_at=T0 + 2 * HOUR),
    )

    # when
    connection = await list_sessions(gql, status="COMPLETED", statuses=["FAILED", "RUNNING"])

    # then: status is ignored, not AND'ed
    assert [node["id"] for node in connection["nodes"]] == ["bad", "run"]
    assert connection["totalCount"] == 2


async def test_empty_statuses_falls_back_to_status(gql: GraphQLClient, engine: AsyncEngine) -> None:
    # given
    await insert_sessions(
        engine,
        session_row(id="run", status="running", started_at=T0),
        session_row(id="ok", status="completed", started_at=T0 + HOUR),
    )

    # when / then
    assert await ids_of(gql, status="RUNNING", statuses=[]) == ["run"]
    assert await ids_of(gql, status="RUNNING", statuses=None) == ["run"]
    assert await ids_of(gql, statuses=[]) == ["ok", "run"]
    assert await ids_of(gql, status=None) == ["ok", "run"]


# --- time bounds --------------------------------------------------------------------------------


async def test_time_bounds_are_inclusive_on_both_sides(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given: sessions exactly on each bound, one microsecond outside each, and between
    await insert_sessions(
        engine,
        session_row(id="before-lower", started_at=T0 - timedelta(microseconds=1)),
        session_row(id="on-lower", started_at=T0),
        session_row(id="between", started_at=T0 + timedelta(minutes=30)),
        session_row(id="on-upper", started_at=T0 + HOUR),
        session_row(id="after-upper", started_at=T0 + HOUR + timedelta(microseconds=1)),
    )

    # when
    connection = await list_sessions(
        gql, startedAfter="2026-04-18T08:00:00+00:00", startedBefore="2026-04-18T09:00:00+00:00"
    )

    # then
    assert [node["id"] for node in connection["nodes"]] == ["on-upper", "between", "on-lower"]
    assert connection["totalCount"] == 3


async def test_equal_bounds_match_exactly_that_instant(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    await insert_sessions(
        engine,
        session_row(id="before", started_at=T0 - timedelta(seconds=1)),
        session_row(id="at", started_at=T0),
        session_row(id="after", started_at=T0 + timedelta(seconds=1)),
    )

    # when / then
    assert await ids_of(
        gql, startedAfter="2026-04-18T08:00:00+00:00", startedBefore="2026-04-18T08:00:00+00:00"
    ) == ["at"]


async def test_sessions_without_started_at_never_match_a_time_bound(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    await insert_sessions(
        engine,
        session_row(id="dated", started_at=T0),
        session_row(id="undated-1", started_at=None, status="pending"),
        session_row(id="undated-2", started_at=None, status="completed"),
    )
    wide_after = "0001-01-01T00:00:00+00:00"
    wide_before = "9999-12-31T23:59:59.999999+00:00"

    # when / then
    assert await ids_of(gql, startedAfter=wide_after) == ["dated"]
    assert await ids_of(gql, startedBefore=wide_before) == ["dated"]
    assert await ids_of(gql, startedAfter=wide_after, startedBefore=wide_before) == ["dated"]
    assert (await list_sessions(gql, startedBefore=wide_before))["totalCount"] == 1
    # and without a bound they are listed
    assert set(await ids_of(gql)) == {"dated", "undated-1", "undated-2"}


async def test_started_after_later_than_started_before_is_empty_not_an_error(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    await insert_sessions(
        engine,
        session_row(id="s1", started_at=T0),
        session_row(id="s2", started_at=T0 + HOUR),
        session_row(id="s3", started_at=None),
    )

    # when
    body = await gql.raw(
        SESSIONS,
        {"startedAfter": "2026-04-18T09:00:00+00:00", "startedBefore": "2026-04-18T08:00:00+00:00"},
    )

    # then
    assert body == {
        "data": {
            "sessions": {
                "totalCount": 0,
                "nodes": [],
                "pageInfo": {"hasNextPage": False, "endCursor": None},
            }
        },
        "extensions": cost(50),
    }


# --- date parsing -------------------------------------------------------------------------------


@pytest.fixture
def local_time_not_utc() -> Iterator[None]:
    """Process local time at UTC+05:30, so taking a naive bound as local time would show."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "IST-05:30"
    time.tzset()
    assert time.timezone == -(5 * 3600 + 30 * 60)
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


async def insert_hourly_around_t0(engine: AsyncEngine) -> None:
    """Sessions at 02:30, 06:00, 08:00 (T0), 10:00 and 13:30 UTC on 2026-04-18."""
    await insert_sessions(
        engine,
        session_row(id="0230z", started_at=T0 - timedelta(hours=5, minutes=30)),
        session_row(id="0600z", started_at=T0 - 2 * HOUR),
        session_row(id="0800z", started_at=T0),
        session_row(id="1000z", started_at=T0 + 2 * HOUR),
        session_row(id="1330z", started_at=T0 + timedelta(hours=5, minutes=30)),
    )


async def test_naive_datetime_is_taken_as_utc(
    gql: GraphQLClient, engine: AsyncEngine, local_time_not_utc: None
) -> None:
    # given
    await insert_hourly_around_t0(engine)

    # when / then: 08:00 naive is 08:00Z, not 08:00+05:30 (02:30Z)
    assert await ids_of(gql, startedAfter="2026-04-18T08:00:00") == ["1330z", "1000z", "0800z"]
    assert await ids_of(gql, startedBefore="2026-04-18T08:00:00") == ["0800z", "0600z", "0230z"]
    assert await ids_of(
        gql, startedAfter="2026-04-18T08:00:00", startedBefore="2026-04-18T08:00:00"
    ) == ["0800z"]


async def test_offset_is_converted_to_utc(gql: GraphQLClient, engine: AsyncEngine) -> None:
    # given
    await insert_hourly_around_t0(engine)

    # when / then: 08:00+02:00 is 06:00Z
    assert await ids_of(
        gql, startedAfter="2026-04-18T08:00:00+02:00", startedBefore="2026-04-18T08:00:00+02:00"
    ) == ["0600z"]
    assert await ids_of(gql, startedAfter="2026-04-18T08:00:00+02:00") == [
        "1330z",
        "1000z",
        "0800z",
        "0600z",
    ]
    # 08:00-05:30 is 13:30Z
    assert await ids_of(gql, startedAfter="2026-04-18T08:00:00-05:30") == ["1330z"]


@pytest.mark.parametrize(
    "instant",
    [
        "2026-04-18T08:00:00+00:00",
        "2026-04-18T08:00:00Z",
        "2026-04-18T08:00:00.000000+00:00",
        "2026-04-18T08:00:00",
        "2026-04-18 08:00:00",
        "2026-04-18 08:00:00+00:00",
        "2026-04-18T10:00:00+02:00",
        "2026-04-18 03:00:00-05:00",
        "2026-04-18T13:30:00+05:30",
    ],
)
async def test_every_spelling_of_t0_matches_exactly_t0(
    gql: GraphQLClient, engine: AsyncEngine, instant: str
) -> None:
    # given
    await insert_hourly_around_t0(engine)

    # when / then
    assert await ids_of(gql, startedAfter=instant, startedBefore=instant) == ["0800z"]


async def test_space_instead_of_t_is_accepted(gql: GraphQLClient, engine: AsyncEngine) -> None:
    # given
    await insert_hourly_around_t0(engine)

    # when
    data = await gql(
        '{ sessions(startedAfter: "2026-04-18 10:00:00", startedBefore: "2026-04-18 13:30:00")'
        " { nodes { id } } }"
    )

    # then
    assert data == {"sessions": {"nodes": [{"id": "1330z"}, {"id": "1000z"}]}}


@pytest.mark.parametrize(
    "bad_date",
    [
        "not a date",
        "yesterday",
        "",
        "2026-13-01T00:00:00+00:00",
        "2026-04-31T00:00:00+00:00",
        "2026-04-18T25:00:00+00:00",
        "2026-04-18T08:00:00+25:00",
        "18/04/2026 08:00",
        "0001-01-01T00:30:00+01:00",
        "9999-12-31T23:30:00-01:00",
    ],
)
@pytest.mark.parametrize("argument", ["startedAfter", "startedBefore"])
async def test_unparsable_date_variable_is_bad_user_input(
    gql: GraphQLClient, engine: AsyncEngine, argument: str, bad_date: str
) -> None:
    # given
    await insert_session(engine, id="s1")

    # when
    body = await gql.raw(SESSIONS, {argument: bad_date})

    # then
    error = bad_user_input(body)
    assert "DateTime" in error["message"]


@pytest.mark.parametrize("bad_date", ["not a date", "2026-13-01T00:00:00+00:00", ""])
@pytest.mark.parametrize("argument", ["startedAfter", "startedBefore"])
async def test_unparsable_date_inline_literal_is_bad_user_input(
    gql: GraphQLClient, engine: AsyncEngine, argument: str, bad_date: str
) -> None:
    # given
    await insert_session(engine, id="s1")

    # when
    body = await gql.raw(f'{{ sessions({argument}: "{bad_date}") {{ nodes {{ id }} }} }}')

    # then
    error = bad_user_input(body)
    assert "DateTime" in error["message"]


@pytest.mark.parametrize("not_a_string", [1713427200, 17.5, True, ["2026-04-18"], {"a": 1}])
async def test_non_string_date_variable_is_bad_user_input(
    gql: GraphQLClient, not_a_string: Any
) -> None:
    # when
    body = await gql.raw(SESSIONS, {"startedAfter": not_a_string})

    # then
    bad_user_input(body)


# --- unknown status -----------------------------------------------------------------------------


async def test_unknown_status_literal_is_bad_user_input(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    await insert_session(engine, id="s1")

    # when
    body = await gql.raw("{ sessions(status: ARCHIVED) { nodes { id } } }")

    # then
    error = bad_user_input(body)
    assert "ARCHIVED" in error["message"]


@pytest.mark.parametrize(
    "variables",
    [
        {"status": "archived"},
        {"status": "ARCHIVED"},
        {"status": "completed"},
        {"status": ""},
        {"statuses": ["archived"]},
        {"statuses": ["FAILED", "archived"]},
        {"statuses": ["completed"]},
        {"statuses": [None]},
    ],
)
async def test_unknown_status_variable_is_bad_user_input(
    gql: GraphQLClient, engine: AsyncEngine, variables: dict[str, Any]
) -> None:
    # given
    await insert_session(engine, id="s1")

    # when
    body = await gql.raw(SESSIONS, variables)

    # then
    bad_user_input(body)


async def test_unknown_status_in_statuses_literal_is_bad_user_input(gql: GraphQLClient) -> None:
    # when
    body = await gql.raw("{ sessions(statuses: [FAILED, ARCHIVED]) { nodes { id } } }")

    # then
    bad_user_input(body)


# --- first --------------------------------------------------------------------------------------


@pytest.mark.parametrize("first", [0, 201, -1, 10_000])
async def test_first_out_of_range_is_bad_user_input(
    gql: GraphQLClient, engine: AsyncEngine, first: int
) -> None:
    # given
    await insert_session(engine, id="s1")

    # when
    body = await gql.raw(SESSIONS, {"first": first})

    # then
    error = bad_user_input(body)
    assert error["path"] == ["sessions"]
    assert "between 1 and 200" in error["message"]
    assert str(first) in error["message"]


async def test_first_out_of_range_inline_literal_is_bad_user_input(gql: GraphQLClient) -> None:
    # when
    body = await gql.raw("{ sessions(first: 0) { nodes { id } } }")

    # then
    error = bad_user_input(body)
    assert "between 1 and 200" in error["message"]


async def test_first_1_gives_one_session(gql: GraphQLClient, engine: AsyncEngine) -> None:
    # given
    await insert_sessions(
        engine,
        session_row(id="old", started_at=T0),
        session_row(id="new", started_at=T0 + HOUR),
    )

    # when
    connection = await list_sessions(gql, first=1)

    # then
    assert [node["id"] for node in connection["nodes"]] == ["new"]
    assert connection["pageInfo"]["hasNextPage"] is True
    assert connection["totalCount"] == 2


async def test_first_200_gives_200_sessions(gql: GraphQLClient, engine: AsyncEngine) -> None:
    # given
    rows = [session_row(id=f"s{i:03d}", started_at=T0 + i * HOUR) for i in range(201)]
    await insert_sessions(engine, *rows)

    # when
    connection = await list_sessions(gql, first=200)

    # then
    assert [node["id"] for node in connection["nodes"]] == [f"s{i:03d}" for i in range(200, 0, -1)]
    assert connection["pageInfo"]["hasNextPage"] is True
    assert connection["totalCount"] == 201


async def test_first_defaults_to_50(gql: GraphQLClient, engine: AsyncEngine) -> None:
    # given
    rows = [session_row(id=f"s{i:02d}", started_at=T0 + i * HOUR) for i in range(51)]
    await insert_sessions(engine, *rows)

    # when
    connection = await list_sessions(gql)

    # then
    assert [node["id"] for node in connection["nodes"]] == [f"s{i:02d}" for i in range(50, 0, -1)]
    assert connection["pageInfo"]["hasNextPage"] is True
    assert connection["totalCount"] == 51


async def test_first_null_means_the_default(gql: GraphQLClient, engine: AsyncEngine) -> None:
    # given
    rows = [session_row(id=f"s{i:02d}", started_at=T0 + i * HOUR) for i in range(51)]
    await insert_sessions(engine, *rows)

    # when
    connection = await list_sessions(gql, first=None)

    # then
    assert len(connection["nodes"]) == 50
    assert connection["pageInfo"]["hasNextPage"] is True


# --- cursors ------------------------------------------------------------------------------------


async def five_sessions(engine: AsyncEngine) -> None:
    await insert_sessions(
        engine,
        *(
            session_row(id=f"s{i}", started_at=T0 + i * HOUR, total_tokens=100 * i)
            for i in range(1, 6)
        ),
    )


async def end_cursor(gql: GraphQLClient, **variables: Any) -> str:
    cursor: str = (await list_sessions(gql, **variables))["pageInfo"]["endCursor"]
    assert cursor
    return cursor


async def test_a_real_end_cursor_continues_the_list(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given: the control for the tampered cursors below
    await five_sessions(engine)
    cursor = await end_cursor(gql, first=2)

    # when
    connection = await list_sessions(gql, first=2, after=cursor)

    # then
    assert [node["id"] for node in connection["nodes"]] == ["s3", "s2"]
    assert connection["totalCount"] == 5


async def assert_bad_cursor(gql: GraphQLClient, cursor: str) -> None:
    body = await gql.raw(SESSIONS, {"first": 2, "after": cursor})
    error = bad_user_input(body)
    assert error["path"] == ["sessions"]
    assert error["message"].startswith("Invalid cursor")
    assert error["extensions"].get("argumentName") == "after"


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "",
        " ",
        ".",
        "..",
        "not.base64!",
        "W10.AAAA",
        "eyJ4IjoxfQ.eyJ4IjoxfQ",
        "x" * 10_240,
        "A" * 5_000 + "." + "A" * 5_240,
    ],
    ids=[
        "garbage",
        "empty",
        "space",
        "dot",
        "two-dots",
        "bad-base64",
        "unsigned-empty-list",
        "unsigned-object",
        "10kb",
        "10kb-with-dot",
    ],
)
async def test_malformed_cursor_is_bad_user_input(
    gql: GraphQLClient, engine: AsyncEngine, cursor: str
) -> None:
    # given
    await five_sessions(engine)

    # when / then
    await assert_bad_cursor(gql, cursor)


async def test_malformed_cursor_inline_literal_is_bad_user_input(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    await five_sessions(engine)

    # when
    body = await gql.raw('{ sessions(after: "garbage") { nodes { id } } }')

    # then
    assert bad_user_input(body)["path"] == ["sessions"]


def _replace_char(text: str, index: int) -> str:
    replacement = "B" if text[index] == "A" else "A"
    return text[:index] + replacement + text[index + 1 :]


@pytest.mark.parametrize("where", ["body-start", "body-middle", "signature-start", "dot"])
async def test_real_cursor_with_one_character_changed_is_bad_user_input(
    gql: GraphQLClient, engine: AsyncEngine, where: str
) -> None:
    # given
    await five_sessions(engine)
    cursor = await end_cursor(gql, first=2)
    dot = cursor.index(".")
    index = {"body-start": 0, "body-middle": dot // 2, "signature-start": dot + 1, "dot": dot}
    tampered = _replace_char(cursor, index[where])
    assert tampered != cursor

    # when / then
    await assert_bad_cursor(gql, tampered)


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge_id(payload: list[Any]) -> list[Any]:
    assert payload.count("s4") == 1, payload
    return ["s2" if item == "s4" else item for item in payload]


def _forge_value(payload: list[Any]) -> list[Any]:
    started = (T0 + 4 * HOUR).isoformat()
    assert payload.count(started) == 1, payload
    return [(T0 + 2 * HOUR).isoformat() if item == started else item for item in payload]


def _forge_both(payload: list[Any]) -> list[Any]:
    return _forge_value(_forge_id(payload))


@pytest.mark.parametrize("forge", [_forge_id, _forge_value, _forge_both])
async def test_re_encoded_body_with_the_old_signature_is_bad_user_input(
    gql: GraphQLClient, engine: AsyncEngine, forge: Callable[[list[Any]], list[Any]]
) -> None:
    # given: a real cursor (after s4), its body re-encoded to point after s2 instead
    await five_sessions(engine)
    cursor = await end_cursor(gql, first=2)
    body, signature = cursor.split(".")
    payload = json.loads(_b64decode(body))
    assert isinstance(payload, list)
    forged = forge(payload)
    assert forged != payload
    forged_body = _b64encode(json.dumps(forged, separators=(",", ":")).encode())
    assert forged_body != body

    # when / then
    await assert_bad_cursor(gql, f"{forged_body}.{signature}")


@pytest.mark.parametrize(
    "order_by",
    [
        {"field": "TOTAL_TOKENS", "direction": "DESC"},
        {"field": "STARTED_AT", "direction": "ASC"},
        {"field": "COMPLETED_AT"},
    ],
)
async def test_cursor_from_another_order_is_bad_user_input(
    gql: GraphQLClient, engine: AsyncEngine, order_by: dict[str, str]
) -> None:
    # given
    await five_sessions(engine)
    cursor = await end_cursor(gql, first=2, orderBy=order_by)

    # when / then: used with the default order (STARTED_AT DESC)
    await assert_bad_cursor(gql, cursor)


async def test_default_order_cursor_is_rejected_by_an_explicit_other_order(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    await five_sessions(engine)
    cursor = await end_cursor(gql, first=2)

    # when
    body = await gql.raw(
        SESSIONS, {"first": 2, "after": cursor, "orderBy": {"field": "TOTAL_TOKENS"}}
    )

    # then
    assert bad_user_input(body)["path"] == ["sessions"]


async def test_default_order_cursor_is_accepted_by_the_same_explicit_order(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    await five_sessions(engine)
    cursor = await end_cursor(gql, first=2)

    # when
    connection = await list_sessions(
        gql, first=2, after=cursor, orderBy={"field": "STARTED_AT", "direction": "DESC"}
    )

    # then
    assert [node["id"] for node in connection["nodes"]] == ["s3", "s2"]


async def test_operations_cursor_is_bad_user_input_for_sessions(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    await five_sessions(engine)
    await insert_timeline(engine, "s5", 3)
    data = await gql(
        '{ session(id: "s5") { operations(first: 1) { pageInfo { endCursor hasNextPage } } } }'
    )
    page_info = data["session"]["operations"]["pageInfo"]
    assert page_info["hasNextPage"] is True
    operations_cursor = page_info["endCursor"]
    assert operations_cursor

    # when / then
    await assert_bad_cursor(gql, operations_cursor)


async def test_sessions_cursor_is_bad_user_input_for_operations(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    await five_sessions(engine)
    await insert_timeline(engine, "s5", 3)
    cursor = await end_cursor(gql, first=2)

    # when
    body = await gql.raw(
        'query ($after: String) { session(id: "s5") '
        "{ operations(after: $after) { nodes { operationType } } } }",
        {"after": cursor},
    )

    # then
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert body["data"] == {"session": None}


async def test_bad_cursor_with_filters_still_fails(gql: GraphQLClient, engine: AsyncEngine) -> None:
    # given
    await five_sessions(engine)

    # when
    body = await gql.raw(SESSIONS, {"workflowId": "wf-a", "statuses": ["FAILED"], "after": "x"})

    # then
    bad_user_input(body)


# --- totalCount ---------------------------------------------------------------------------------

TEN = [
    # id, workflow, status, started_at (hours after T0)
    ("s0", "wf-a", "completed", 0),
    ("s1", "wf-a", "failed", 1),
    ("s2", "wf-a", "failed", 2),
    ("s3", "wf-a", "running", 3),
    ("s4", "wf-a", "failed", 4),
    ("s5", "wf-a", "cancelled", 5),
    ("s6", "wf-a", "failed", 6),
    ("s7", "wf-b", "failed", 7),
    ("s8", "wf-b", "failed", 8),
    ("s9", "wf-b", "failed", 9),
]


def _started(hours: int) -> str:
    return (T0 + hours * HOUR).isoformat()


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, ["s9", "s8", "s7", "s6", "s5", "s4", "s3", "s2", "s1", "s0"]),
        ({"workflowId": "wf-a"}, ["s6", "s5", "s4", "s3", "s2", "s1", "s0"]),
        ({"status": "FAILED"}, ["s9", "s8", "s7", "s6", "s4", "s2", "s1"]),
        (
            {"statuses": ["FAILED", "CANCELLED"]},
            ["s9", "s8", "s7", "s6", "s5", "s4", "s2", "s1"],
        ),
        ({"startedAfter": _started(3)}, ["s9", "s8", "s7", "s6", "s5", "s4", "s3"]),
        ({"startedBefore": _started(6)}, ["s6", "s5", "s4", "s3", "s2", "s1", "s0"]),
        (
            {"startedAfter": _started(1), "startedBefore": _started(8)},
            ["s8", "s7", "s6", "s5", "s4", "s3", "s2", "s1"],
        ),
        (
            {
                "workflowId": "wf-a",
                "statuses": ["FAILED", "RUNNING"],
                "startedAfter": _started(1),
                "startedBefore": _started(6),
            },
            ["s6", "s4", "s3", "s2", "s1"],
        ),
    ],
    ids=[
        "none",
        "workflowId",
        "status",
        "statuses",
        "startedAfter",
        "startedBefore",
        "both-bounds",
        "combined",
    ],
)
async def test_total_count_counts_every_match_not_the_page(
    gql: GraphQLClient, engine: AsyncEngine, variables: dict[str, Any], expected: list[str]
) -> None:
    # given
    await insert_sessions(
        engine,
        *(
            session_row(id=i, workflow_id=wf, status=st, started_at=T0 + h * HOUR)
            for i, wf, st, h in TEN
        ),
        session_row(id="undated", workflow_id="wf-a", status="failed", started_at=None),
    )
    with_undated = "startedAfter" not in variables and "startedBefore" not in variables
    if with_undated:
        expected = [*expected, "undated"]

    # when
    first_page = await list_sessions(gql, first=3, **variables)
    second_page = await list_sessions(
        gql, first=3, after=first_page["pageInfo"]["endCursor"], **variables
    )

    # then
    assert [node["id"] for node in first_page["nodes"]] == expected[:3]
    assert first_page["totalCount"] == len(expected)
    assert first_page["pageInfo"]["hasNextPage"] is True
    assert [node["id"] for node in second_page["nodes"]] == expected[3:6]
    assert second_page["totalCount"] == len(expected)


async def test_total_count_seven_of_ten(gql: GraphQLClient, engine: AsyncEngine) -> None:
    # given
    await insert_sessions(
        engine,
        *(
            session_row(id=i, workflow_id=wf, status=st, started_at=T0 + h * HOUR)
            for i, wf, st, h in TEN
        ),
    )

    # when
    connection = await list_sessions(gql, first=3, workflowId="wf-a")

    # then
    assert [node["id"] for node in connection["nodes"]] == ["s6", "s5", "s4"]
    assert connection["totalCount"] == 7


async def test_total_count_is_zero_when_nothing_matches(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    await insert_session(engine, id="s1", workflow_id="wf-a")

    # when
    connection = await list_sessions(gql, workflowId="wf-z")

    # then
    assert connection == {
        "totalCount": 0,
        "nodes": [],
        "pageInfo": {"hasNextPage": False, "endCursor": None},
    }


# --- default order ------------------------------------------------------------------------------


async def test_default_order_is_newest_started_first_undated_last(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given: inserted in no particular order
    await insert_sessions(
        engine,
        session_row(id="mid", started_at=T0),
        session_row(id="undated-a", started_at=None),
        session_row(id="newest", started_at=T0 + 24 * HOUR),
        session_row(id="oldest", started_at=T0 - 24 * HOUR),
        session_row(id="undated-b", started_at=None),
        session_row(id="mid-plus-1us", started_at=T0 + timedelta(microseconds=1)),
    )

    # when
    ids = await ids_of(gql)

    # then
    assert ids[:4] == ["newest", "mid-plus-1us", "mid", "oldest"]
    assert set(ids[4:]) == {"undated-a", "undated-b"}


async def test_default_order_pages_through_undated_sessions_last(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    await insert_sessions(
        engine,
        session_row(id="u1", started_at=None),
        session_row(id="d1", started_at=T0),
        session_row(id="u2", started_at=None),
        session_row(id="d2", started_at=T0 + HOUR),
        session_row(id="u3", started_at=None),
    )

    # when: one at a time
    seen: list[str] = []
    after: str | None = None
    for _ in range(6):
        connection = await list_sessions(gql, first=1, after=after)
        seen += [node["id"] for node in connection["nodes"]]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]

    # then
    assert seen[:2] == ["d2", "d1"]
    assert sorted(seen[2:]) == ["u1", "u2", "u3"]
    assert len(seen) == 5


# --- workflow name ------------------------------------------------------------------------------


async def test_workflow_name_and_workflow_come_from_the_workflow_table(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    await insert_workflow(engine, "wf-named", "Nightly build")
    await insert_workflow(engine, "wf-nameless", None)
    await insert_workflow(engine, "wf-unused", "Never used")
    await insert_sessions(
        engine,
        session_row(id="named", workflow_id="wf-named", started_at=T0 + 3 * HOUR),
        session_row(id="nameless", workflow_id="wf-nameless", started_at=T0 + 2 * HOUR),
        session_row(id="orphan", workflow_id="wf-missing", started_at=T0 + HOUR),
        session_row(id="none", workflow_id=None, started_at=T0),
    )

    # when
    data = await gql("{ sessions { nodes { id workflowId workflowName workflow { id name } } } }")

    # then
    assert data["sessions"]["nodes"] == [
        {
            "id": "named",
            "workflowId": "wf-named",
            "workflowName": "Nightly build",
            "workflow": {"id": "wf-named", "name": "Nightly build"},
        },
        {
            "id": "nameless",
            "workflowId": "wf-nameless",
            "workflowName": None,
            "workflow": {"id": "wf-nameless", "name": None},
        },
        {
            "id": "orphan",
            "workflowId": "wf-missing",
            "workflowName": None,
            "workflow": None,
        },
        {"id": "none", "workflowId": None, "workflowName": None, "workflow": None},
    ]


async def test_workflow_name_follows_the_filtered_workflow(
    gql: GraphQLClient, engine: AsyncEngine
) -> None:
    # given
    await insert_workflow(engine, "wf-a", "Alpha")
    await insert_workflow(engine, "wf-b", "Beta")
    await insert_sessions(
        engine,
        session_row(id="a1", workflow_id="wf-a", started_at=T0),
        session_row(id="b1", workflow_id="wf-b", started_at=T0 + HOUR),
        session_row(id="a2", workflow_id="wf-a", started_at=T0 + 2 * HOUR),
    )

    # when
    data = await gql('{ sessions(workflowId: "wf-a") { nodes { id workflowName } } }')

    # then
    assert data["sessions"]["nodes"] == [
        {"id": "a2", "workflowName": "Alpha"},
        {"id": "a1", "workflowName": "Alpha"},
    ]
