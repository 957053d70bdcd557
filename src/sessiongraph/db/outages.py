"""Which failures of the database are outages (retry later), not bugs, and the one place
that reports them as ``DatabaseUnavailable``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from asyncpg.exceptions import InternalClientError

from sessiongraph.db.errors import DatabaseUnavailable

logger = logging.getLogger("sessiongraph.db")

#: PostgreSQL SQLSTATEs of a server that cannot serve now: shutting down (admin or
#: crash), starting up or in recovery, out of connection slots. Class 08, connection
#: exceptions, is matched as a class.
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
_CONNECTION_EXCEPTION = "08"
#: A transaction the server gave up for a conflict of the moment: a serialization
#: failure, a deadlock, a lock not available. It rolled back; run again, it may pass.
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03"})
#: A statement cancelled at the statement timeout (or by an administrator). For a read
#: it says "ask for less" (``QueryTimeout``); a write's statements are small, so for a
#: write it means it waited on locks: an outage, with the write rolled back.
QUERY_CANCELED = "57014"

#: SQLite's primary result codes for a database another connection holds: it stayed
#: busy past the busy timeout.
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


def is_outage(error: BaseException, *, writing: bool = False) -> bool:
    """True when ``error`` says the database cannot serve now (retrying later may
    succeed); False for everything else, bugs and refused data included. ``writing``:
    the error ended a write's transaction (a cancelled statement is then an outage)."""
    if isinstance(error, sa.exc.TimeoutError):  # no pooled connection came free in time
        return True
    if isinstance(error, sa.exc.DBAPIError):
        if error.connection_invalidated:  # SQLAlchemy saw the connection drop
            return True
        return error.orig is not None and _is_driver_outage(error.orig, writing=writing)
    return _is_driver_outage(error, writing=writing)


def _is_driver_outage(error: BaseException, *, writing: bool) -> bool:
    # Connecting is not wrapped by SQLAlchemy: a refused or unreachable address comes
    # as the OSError itself (ConnectionRefusedError, "Multiple exceptions: ..."), and
    # asyncpg's own errors (CannotConnectNowError...) as themselves.
    if isinstance(error, OSError):
        return True
    # A connection whose operation was cut off mid-way (by a restart of the server)
    # refuses the next one ("another operation is in progress"); SQLAlchemy 2.1 wraps
    # it, 2.0 lets it through as asyncpg raised it.
    if isinstance(error, InternalClientError):
        return True
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(sqlstate, str):
        return (
            sqlstate.startswith(_CONNECTION_EXCEPTION)
            or sqlstate in _UNAVAILABLE_SQLSTATES
            or sqlstate in _TRANSIENT_SQLSTATES
            or (writing and sqlstate == QUERY_CANCELED)
        )
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)


@contextmanager
def reported(*, writing: bool = False) -> Iterator[None]:
    """Raises an outage met inside as ``DatabaseUnavailable``, logged once as a warning
    (one line: an outage is not a bug, its traceback says nothing); anything else passes
    as it is. ``writing``: inside is a write (see ``is_outage``)."""
    try:
        yield
    except Exception as error:
        if not is_outage(error, writing=writing):
            raise
        reason = _one_line(error)
        logger.warning("database unavailable: %s", reason)
        raise DatabaseUnavailable(reason) from error


def _one_line(error: BaseException) -> str:
    # SQLAlchemy's messages go on with the statement and a link on further lines.
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
