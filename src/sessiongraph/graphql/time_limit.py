"""The request time limit of queries and mutations, and what a request it stopped is told.

A query stopped at the limit is ``QUERY_TOO_COMPLEX``: ask for less, or try later. A
write is another matter: once begun it runs to its end even when the request is stopped
(``queries.uncancellable``: a committed write is always announced, and its connection
goes back to the pool clean), so it may commit after the client was answered. A request
whose write had begun is therefore told ``UNAVAILABLE`` with ``writeMayHaveCommitted``:
it should retry, which is safe because every mutation is idempotent (a retry of a write
that committed returns what it stored, ``sessiongraph.db.replays``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

from graphql import GraphQLError

from sessiongraph.errors import ErrorCode, Unavailable
from sessiongraph.graphql.errors import limit_reached

T = TypeVar("T")


@dataclass
class _Writes:
    began: bool = False
    #: The path of the mutation field whose write began last (the one stopped).
    path: list[str | int] | None = None


#: The request being timed, in its task and in every task it starts (a batch's
#: operations, a write run to its end): they share the one ``_Writes``.
_timed: ContextVar[_Writes | None] = ContextVar("sessiongraph_timed_request", default=None)


def write_begins(path: list[str | int] | None = None) -> None:
    """Tell the timed request (if any) that a write of it began, that of the mutation
    field at ``path``: from now on, stopping it does not stop the write."""
    writes = _timed.get()
    if writes is not None:
        writes.began = True
        writes.path = path


async def within(limit: float, work: Awaitable[T]) -> T | GraphQLError:
    """``work``'s result, or the error of a request stopped at ``limit`` seconds."""
    writes = _Writes()
    token = _timed.set(writes)
    try:
        async with asyncio.timeout(limit):
            return await work
    except TimeoutError:
        return timed_out(limit, wrote=writes.began, path=writes.path)
    finally:
        _timed.reset(token)


def timed_out(limit: float, *, wrote: bool, path: list[str | int] | None = None) -> GraphQLError:
    """The error of a request stopped at ``limit``; one whose write began (``wrote``)
    names that mutation field's ``path``, as any field's error does."""
    if not wrote:
        return limit_reached(
            f"The request ran past the time limit of {limit:g} s and was stopped. "
            "Ask for less, or try again later.",
            limit="requestTimeout",
            maximum=limit,
        )
    return GraphQLError(
        f"The request ran past the time limit of {limit:g} s and was stopped, but its "
        "write goes on and may have committed. Retry it: every mutation is idempotent, "
        "and a retry of a write that committed returns what it stored.",
        path=path,
        extensions={
            "code": ErrorCode.UNAVAILABLE.value,
            "retryAfterSeconds": Unavailable.RETRY_AFTER_SECONDS,
            "limit": "requestTimeout",
            "maximum": limit,
            "writeMayHaveCommitted": True,
        },
    )
