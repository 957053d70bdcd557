"""The error codes of the contract, and the exceptions that carry them to the client."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar


class ErrorCode(StrEnum):
    BAD_USER_INPUT = "BAD_USER_INPUT"
    AMBIGUOUS_ID = "AMBIGUOUS_ID"
    QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    #: Authenticated, but this token may not do that (a read-only token and a mutation).
    FORBIDDEN = "FORBIDDEN"
    #: Automatic persisted queries: the hash is unknown; send the query with it.
    PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
    INTERNAL = "INTERNAL"
    #: A subscription's stream has a gap: re-read what it watches, then subscribe again.
    EVENTS_MISSED = "EVENTS_MISSED"
    #: The database could not serve the request now (unreachable, pool exhausted): retry.
    UNAVAILABLE = "UNAVAILABLE"
    #: A retried write whose input differs from what is stored; the same input again
    #: returns what is stored.
    CONFLICT = "CONFLICT"


class ApiError(Exception):
    """An error meant for the client: its message and extensions are shown as they are.

    graphql-core copies ``extensions`` of the original exception onto the
    GraphQL error, so raising one of these from a resolver is enough.
    """

    code: ClassVar[ErrorCode]

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions: dict[str, Any] = {"code": self.code.value, **extensions}


class BadUserInput(ApiError):
    code = ErrorCode.BAD_USER_INPUT


class AmbiguousId(ApiError):
    code = ErrorCode.AMBIGUOUS_ID


class QueryTimeout(ApiError):
    """The database cancelled a statement that ran past the statement timeout."""

    code = ErrorCode.QUERY_TOO_COMPLEX


class EventsMissed(ApiError):
    """A subscriber fell behind, or the event feed was interrupted: events were lost."""

    code = ErrorCode.EVENTS_MISSED


class Unavailable(ApiError):
    """The database could not serve the request now; retrying later may succeed.

    The message names no host, port or driver: what failed is in the server's log.
    """

    code = ErrorCode.UNAVAILABLE

    #: A constant, not a setting: an outage this error reports (a pool that had no free
    #: connection within its timeout, a server restarting, a dropped connection) lasts
    #: seconds or minutes, which the server cannot know in advance. One second is a
    #: first wait that does not pile retries onto a pool already full; a client backs
    #: off further on its own if the next try fails too.
    RETRY_AFTER_SECONDS: ClassVar[int] = 1

    def __init__(self) -> None:
        super().__init__(
            "The database is unavailable right now; retry the request later.",
            retryAfterSeconds=self.RETRY_AFTER_SECONDS,
        )


class WriteConflict(ApiError):
    """A retried write with other values than the stored one; ``differences`` names the
    fields (argument paths) that differ. Nothing was changed."""

    code = ErrorCode.CONFLICT

    def __init__(self, message: str, differences: list[str]) -> None:
        super().__init__(message, differences=differences)


class InternalError(ApiError):
    """The server failed; the cause is logged, never shown."""

    code = ErrorCode.INTERNAL
