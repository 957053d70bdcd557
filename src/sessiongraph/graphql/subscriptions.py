"""The Subscription root: changes pushed as they are written, over graphql-transport-ws.

Each subscription waits on its own bounded mailbox (see ``sessiongraph.events``)
and, per event, reads what its query selects: events carry ids, not rows.
Subscriptions report what changes after they start; read the current state with
a query once the subscription is running, so nothing falls between the two.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from enum import Enum
from typing import Annotated

import strawberry
from strawberry import UNSET

from sessiongraph.db import queries
from sessiongraph.db.errors import DatabaseUnavailable
from sessiongraph.errors import ApiError, InternalError, Unavailable
from sessiongraph.events import Event
from sessiongraph.graphql.context import Info
from sessiongraph.graphql.errors import INTERNAL_MESSAGE
from sessiongraph.graphql.filters import (
    FilterArgument,
    StartedAfterArgument,
    StartedBeforeArgument,
    StatusArgument,
    StatusesArgument,
    WorkflowIdArgument,
    session_criteria,
)
from sessiongraph.graphql.types.operation import Operation, operation_columns, operation_list
from sessiongraph.graphql.types.session import Session
from sessiongraph.inputs import check_id

logger = logging.getLogger("sessiongraph.graphql")


def _change(event: Event) -> queries.Change:
    return queries.Change(
        session_id=event.session_id,
        new=event.new,
        first_row=event.rows[0] if event.rows is not None else None,
        before=dict(event.before),
    )


@strawberry.enum(description="What happened to a session.")
class SessionChangeKind(Enum):
    STARTED = strawberry.enum_value("started", description="It was started.")
    OPERATIONS_RECORDED = strawberry.enum_value(
        "recorded", description="It recorded operations (operationCount changed)."
    )
    COMPLETED = strawberry.enum_value(
        "completed", description="It finished: status, tokens, cost and completion are final."
    )


@strawberry.type(description="A change to a session, for a live list.")
class SessionChange:
    kind: SessionChangeKind = strawberry.field(
        description="The latest change; changes in quick succession arrive as one."
    )
    matches_filter: bool = strawberry.field(
        description="False when the session matched the subscription's filters before this "
        "change and does not after it (it left the list, e.g. completed under a RUNNING "
        "filter): drop it from the list. Sent once."
    )
    session: Session = strawberry.field(description="The session as it is now.")


@strawberry.type(description="Operations that one recordOperations call stored.")
class RecordedOperations:
    session_id: str = strawberry.field(description="The session they belong to.")
    operations: list[Operation] = operation_list(
        "The new operations, in the order they were recorded. Operations the "
        "call sent again (already present) are not repeated."
    )


@asynccontextmanager
async def _reported(subscription: str) -> AsyncIterator[None]:
    """Client errors pass; an outage of the database (logged where it was met) is shown
    as UNAVAILABLE; a failure of the server is logged and shown as INTERNAL."""
    try:
        yield
    except ApiError:
        raise
    except DatabaseUnavailable:
        raise Unavailable from None
    except Exception as error:
        logger.error("subscription %s failed", subscription, exc_info=error)
        raise InternalError(INTERNAL_MESSAGE) from None


@strawberry.type(description="Changes pushed as they happen (graphql-transport-ws at /graphql).")
class Subscription:
    @strawberry.subscription(
        description="A session as it is once the subscription listens (nothing if it does "
        "not exist yet), then each time it changes: started, operations recorded "
        "(operationCount), completed (status, tokens, cost, completion). Changes in quick "
        "succession may arrive as one, always showing the latest state."
    )
    async def session_updated(
        self,
        info: Info,
        id: Annotated[
            str,
            strawberry.argument(description="The session's full id; it may not exist yet."),
        ],
    ) -> AsyncGenerator[Session, None]:
        session_id = check_id(id, "id")
        context = info.context
        async with _reported("sessionUpdated"):
            with context.events.subscribe(
                accepts=lambda event: event.session_id == session_id,
                key=lambda event: event.session_id,
            ) as mailbox:
                # Listening from here: the current state first, so a client that
                # reads nothing else misses nothing.
                row = await queries.fetch_session(engine=context.engine, session_id=session_id)
                while True:
                    if row is not None:
                        context.renew_loaders()
                        yield Session.from_row(row)
                    await mailbox.take()
                    row = await queries.fetch_session(engine=context.engine, session_id=session_id)

    @strawberry.subscription(
        description="Each new batch of a session's operations, as recordOperations stores it. "
        "Select fields as on any Operation; heavy fields are read only when selected."
    )
    async def operations_recorded(
        self,
        info: Info,
        session_id: Annotated[
            str,
            strawberry.argument(description="The session's full id; it may not exist yet."),
        ],
    ) -> AsyncGenerator[RecordedOperations, None]:
        session_id = check_id(session_id, "sessionId")
        context = info.context
        columns = operation_columns(info)
        async with _reported("operationsRecorded"):
            with context.events.subscribe(
                accepts=lambda event: event.session_id == session_id and event.rows is not None,
                key=None,
            ) as mailbox:
                while True:
                    for event in await mailbox.take():
                        assert event.rows is not None
                        rows = await queries.fetch_recorded_operations(
                            engine=context.engine,
                            session_id=session_id,
                            rows=event.rows,
                            columns=columns,
                        )
                        if rows:
                            yield RecordedOperations(
                                session_id=session_id,
                                operations=Operation.from_rows(rows),
                            )

    @strawberry.subscription(
        description="Changes to the sessions a `sessions` list with the same filters shows: "
        "for a live dashboard. A session that stops matching (because of any of its values: "
        "e.g. it completes under a RUNNING filter) arrives once more with matchesFilter false."
    )
    async def sessions_changed(
        self,
        info: Info,
        workflow_id: WorkflowIdArgument = UNSET,
        status: StatusArgument = UNSET,
        statuses: StatusesArgument = UNSET,
        started_after: StartedAfterArgument = UNSET,
        started_before: StartedBeforeArgument = UNSET,
        filter: FilterArgument = UNSET,
    ) -> AsyncGenerator[SessionChange, None]:
        filters = session_criteria(
            workflow_id=workflow_id,
            status=status,
            statuses=statuses,
            started_after=started_after,
            started_before=started_before,
            filter=filter,
        )
        where = queries.whole_filter(filters)
        context = info.context
        async with _reported("sessionsChanged"):
            # Every event is a candidate: whether its session matches, now and before the
            # writes the event stands for, is read with it.
            with context.events.subscribe(
                accepts=lambda _event: True, key=lambda event: event.session_id
            ) as mailbox:
                while True:
                    events = await mailbox.take()
                    rows = await queries.fetch_changed_sessions(
                        engine=context.engine,
                        changes=[_change(event) for event in events],
                        where=where,
                    )
                    context.renew_loaders()
                    for event in events:
                        row = rows.get(event.session_id)
                        if row is None:
                            continue
                        matches = bool(row["matches"])
                        if matches or row["matched"]:
                            yield SessionChange(
                                kind=SessionChangeKind(event.kind.value),
                                matches_filter=matches,
                                session=Session.from_row(row),
                            )
