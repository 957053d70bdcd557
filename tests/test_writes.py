"""The write functions refuse with domain errors that carry the facts, no GraphQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sessiongraph.db import writes
from sessiongraph.db.errors import (
    CompletedBeforeStart,
    Conflict,
    OperationIdTaken,
    SessionFinished,
    SessionNotFound,
)
from sessiongraph.events import Event
from tests.helpers import T0, insert_operations, insert_session, operation_row, session_row


async def _quiet(conn: AsyncConnection, event: Event) -> None:
    pass


_COMPLETION = writes.Completion(
    status="completed",
    completed_at=T0 + timedelta(minutes=1),
    error_message=None,
    input_tokens=None,
    output_tokens=None,
    cache_creation_tokens=None,
    cache_read_tokens=None,
    total_tokens=None,
    total_cost_usd=None,
    cost_by_model=None,
)


async def test_starting_a_taken_id_with_other_values_is_a_conflict(engine: AsyncEngine) -> None:
    await insert_session(engine, id="s-1", agent_model="a")
    row = session_row(id="s-1", agent_model="b")

    with pytest.raises(Conflict) as refused:
        await writes.start_session(engine=engine, row=row, workflow_name=None, announce=_quiet)

    assert (refused.value.session_id, refused.value.differences) == ("s-1", ["agent_model"])


async def test_an_operation_id_of_another_session_names_its_owner_and_place(
    engine: AsyncEngine,
) -> None:
    await insert_session(engine, id="s-1", status="running")
    await insert_session(engine, id="s-2", status="running")
    await insert_operations(engine, operation_row("s-1", operation_id="shared"))
    rows = [operation_row("s-2", operation_id=i) for i in ("fresh", "shared")]

    with pytest.raises(OperationIdTaken) as refused:
        await writes.record_operations(engine=engine, session_id="s-2", rows=rows, announce=_quiet)

    taken = refused.value
    assert (taken.operation_id, taken.owner, taken.index) == ("shared", "s-1", 1)


async def test_recording_for_a_missing_or_finished_session_is_refused(
    engine: AsyncEngine,
) -> None:
    await insert_session(engine, id="done", status="failed")
    rows = [operation_row("x")]

    with pytest.raises(SessionNotFound) as missing:
        await writes.record_operations(engine=engine, session_id="x", rows=rows, announce=_quiet)
    with pytest.raises(SessionFinished) as finished:
        await writes.record_operations(engine=engine, session_id="done", rows=rows, announce=_quiet)

    assert missing.value.session_id == "x"
    assert (finished.value.session_id, finished.value.status) == ("done", "failed")


async def test_completing_is_refused_with_the_reason(engine: AsyncEngine) -> None:
    await insert_session(engine, id="done", status="cancelled")
    await insert_session(engine, id="open", status="running", started_at=T0)
    early = replace(_COMPLETION, completed_at=T0 - timedelta(seconds=1))

    with pytest.raises(SessionNotFound):
        await writes.complete_session(
            engine=engine, session_id="x", completion=_COMPLETION, announce=_quiet
        )
    with pytest.raises(Conflict) as finished:
        await writes.complete_session(
            engine=engine, session_id="done", completion=_COMPLETION, announce=_quiet
        )
    with pytest.raises(CompletedBeforeStart) as before_start:
        await writes.complete_session(
            engine=engine, session_id="open", completion=early, announce=_quiet
        )

    assert finished.value.differences == ["status", "completed_at"]
    assert (before_start.value.started_at, before_start.value.completed_at) == (
        T0,
        T0 - timedelta(seconds=1),
    )
