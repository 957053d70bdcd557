"""What the write functions refuse, as facts: which session, which operation, which row;
and a database that could not be reached at all.

They know nothing of GraphQL: the API words them for its clients, with its codes and
argument paths (``sessiongraph.graphql.mutations``, ``sessiongraph.graphql.errors``).
A refused call stored nothing.
"""

from __future__ import annotations

from datetime import datetime


class DatabaseUnavailable(Exception):
    """The database could not serve a read or a write now: no connection was free within
    the pool timeout, the server could not be reached or dropped the connection, or
    SQLite stayed locked past its busy timeout. Retrying later may succeed. Raised by
    ``sessiongraph.db.outages``, with the driver's error as its cause."""


class WriteRefused(Exception):
    """A write the database layer would not make."""


class SessionNotFound(WriteRefused):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"no session {session_id!r}")
        self.session_id = session_id


class SessionFinished(WriteRefused):
    """The session is completed, failed or cancelled: it takes no more writes."""

    def __init__(self, session_id: str, status: str) -> None:
        super().__init__(f"session {session_id!r} is {status}")
        self.session_id = session_id
        self.status = status


class CompletedBeforeStart(WriteRefused):
    def __init__(self, session_id: str, started_at: datetime, completed_at: datetime) -> None:
        super().__init__(f"session {session_id!r} would complete before it started")
        self.session_id = session_id
        self.started_at = started_at
        self.completed_at = completed_at


class TotalTokensTooLarge(WriteRefused):
    """``total_tokens``, summed from the session's counts since none was given, is more
    than a GraphQL ``Int`` carries: stored, it could never be read back as it is."""

    def __init__(self, session_id: str, total: int) -> None:
        super().__init__(f"session {session_id!r} would total {total} tokens")
        self.session_id = session_id
        self.total = total


class OperationIdTaken(WriteRefused):
    """An operation id of the batch is stored for another session."""

    def __init__(self, operation_id: str, owner: str, index: int) -> None:
        super().__init__(f"operation {operation_id!r} belongs to session {owner!r}")
        self.operation_id = operation_id
        #: The session the operation id is stored for.
        self.owner = owner
        #: Where the operation is in the batch.
        self.index = index


class Conflict(WriteRefused):
    """A retried write whose input differs from what is stored: ``startSession`` of an id
    that exists with other values, or a second ``completeSession`` with other figures.
    The same input again is no error (see ``sessiongraph.db.replays``)."""

    def __init__(self, session_id: str, differences: list[str]) -> None:
        super().__init__(f"session {session_id!r} is stored with other {', '.join(differences)}")
        self.session_id = session_id
        #: The columns whose stored values differ from the call's, in table order.
        self.differences = differences
