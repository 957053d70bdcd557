"""The session filter arguments, shared by ``sessions`` and ``sessionsChanged``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry import UNSET

from sessiongraph.db.queries import SessionCriteria
from sessiongraph.graphql.arguments import given
from sessiongraph.graphql.session_filter import SessionFilter, session_where
from sessiongraph.graphql.types.session import SessionStatus

WorkflowIdArgument = Annotated[
    str | None, strawberry.argument(description="Only this workflow's sessions.")
]
StatusArgument = Annotated[
    SessionStatus | None,
    strawberry.argument(description="Only this status (legacy; see `statuses`)."),
]
StatusesArgument = Annotated[
    list[SessionStatus] | None,
    strawberry.argument(
        description="Any of these statuses; takes precedence over `status` when non-empty."
    ),
]
StartedAfterArgument = Annotated[
    datetime | None,
    strawberry.argument(description="Started at or after this instant (inclusive)."),
]
StartedBeforeArgument = Annotated[
    datetime | None,
    strawberry.argument(description="Started at or before this instant (inclusive)."),
]
FilterArgument = Annotated[
    SessionFilter | None,
    strawberry.argument(
        description="Sessions matching this filter, AND'ed with the other arguments."
    ),
]


def session_criteria(
    *,
    workflow_id: str | None = UNSET,
    status: SessionStatus | None = UNSET,
    statuses: list[SessionStatus] | None = UNSET,
    started_after: datetime | None = UNSET,
    started_before: datetime | None = UNSET,
    filter: SessionFilter | None = UNSET,
) -> SessionCriteria:
    """The sessions the arguments describe (each may be UNSET, as it is when not given).
    Raises ``BadUserInput`` for a filter beyond its limits."""
    status = given(status)
    chosen = given(statuses) or ([status] if status is not None else [])
    return SessionCriteria(
        workflow_id=given(workflow_id),
        statuses=tuple(dict.fromkeys(s.name.lower() for s in chosen)),
        started_after=given(started_after),
        started_before=given(started_before),
        where=session_where(given(filter)),
    )
