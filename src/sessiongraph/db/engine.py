"""The async engine and schema creation."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from sessiongraph.config import Settings
from sessiongraph.db import sqlite_connections, writer
from sessiongraph.db.tables import metadata
from sessiongraph.jsontext import load_stored


def create_engine(settings: Settings, *, background_checkpoints: bool = False) -> AsyncEngine:
    """An engine for ``settings.database_url``, pooled as configured.

    SQLite gets WAL, foreign keys and the busy timeout (how long a write waits for
    another process's, see ``writer``); with ``background_checkpoints`` (the server,
    which runs a ``checkpoints.Checkpointer``) its connections leave checkpoints to that;
    its connections can run a write transaction without thread hops
    (``sqlite_connections``).
    PostgreSQL gets the statement timeout, so no request can hold the database for
    long, and pooled connections the server closed are replaced before use. Stored
    JSON is decoded by ``load_stored`` on both.
    """
    url = make_url(settings.database_url)
    pool = {
        "pool_size": settings.pool_size,
        "max_overflow": settings.max_overflow,
        "pool_timeout": settings.pool_timeout_seconds,
    }
    if settings.is_sqlite:
        engine = create_async_engine(
            url,
            echo=settings.echo_sql,
            async_creator=sqlite_connections.connector(lambda: engine),
            **pool,
        )
        pragmas = [
            *SQLITE_PRAGMAS,
            f"PRAGMA busy_timeout = {round(settings.sqlite_busy_timeout_seconds * 1000)}",
        ]
        if background_checkpoints:
            pragmas.append("PRAGMA wal_autocheckpoint = 0")
        sa.event.listen(engine.sync_engine, "connect", functools.partial(_configure, pragmas))
        return engine
    engine = create_async_engine(
        url,
        echo=settings.echo_sql,
        connect_args={"server_settings": server_settings(settings)},
        json_deserializer=load_stored,
        **pool,
    )
    sa.event.listen(engine.sync_engine, "checkout", _replace_if_closed)
    return engine


def server_settings(settings: Settings) -> dict[str, str]:
    """The PostgreSQL settings of every connection the server opens."""
    return {
        "application_name": "sessiongraph",
        "statement_timeout": str(settings.statement_timeout_ms),
        "timezone": "UTC",
        # A page's statement stops at its LIMIT, but the planner may cost it as if it
        # read every row it might (no statistics of how the conditions combine), and
        # past jit_above_cost it compiles the statement first: 50-150 ms for a 10 ms
        # read. Nothing this server runs is long enough to gain from it.
        "jit": "off",
        # Parallel workers take several milliseconds to start (more on a busy machine):
        # a 2 ms aggregate of a month of rollups took 19 ms in two of them. Only a
        # statement estimated at many times that goes parallel (the default is 1000).
        "parallel_setup_cost": "10000",
    }


def _replace_if_closed(_dbapi_connection: Any, _record: Any, proxy: Any) -> None:
    """Gives up a pooled connection the server closed while it sat in the pool (a restart,
    ``pg_terminate_backend``, an idle timeout): the pool opens another in its place.

    This is what ``pool_pre_ping`` would catch, at no cost: the driver saw the server
    close the socket already, where a ping is three round trips on every checkout (the
    asyncpg dialect pings inside a transaction). A connection that fails while in use
    is not caught here: its request gets ``UNAVAILABLE``, and SQLAlchemy, seeing a
    disconnect, replaces every connection opened before it.
    """
    if proxy.driver_connection.is_closed():
        raise sa.exc.DisconnectionError("the server closed this pooled connection")


async def warm_pool(engine: AsyncEngine, connections: int) -> None:
    """Opens ``connections`` connections at once and returns them to the pool, so that
    the first requests do not each wait for a connection to be made."""
    opened = await asyncio.gather(
        *(engine.connect().start() for _ in range(connections)), return_exceptions=True
    )
    for connection in opened:
        if not isinstance(connection, BaseException):
            await connection.close()
    for connection in opened:
        if isinstance(connection, BaseException):
            raise connection


#: Every SQLite connection's. The WAL file, once started over, is cut back to 64 MiB:
#: what a long burst of writes made it grows no further, but is not kept for good.
SQLITE_PRAGMAS = (
    "PRAGMA foreign_keys = ON",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    f"PRAGMA journal_size_limit = {64 * 2**20}",
)


def _configure(pragmas: list[str], dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in pragmas:
        cursor.execute(pragma)
    cursor.close()


async def is_empty(engine: AsyncEngine) -> bool:
    """True when no table holds a row."""
    async with engine.connect() as conn:
        for table in metadata.sorted_tables:
            if await conn.scalar(sa.select(sa.literal(1)).select_from(table).limit(1)):
                return False
    return True


async def clear_data(engine: AsyncEngine) -> None:
    """Delete every row of every table, children first, and the rollups last (deleting
    sessions updates them)."""
    tables = reversed(metadata.sorted_tables)
    async with writer.transaction(engine) as conn:
        for table in sorted(tables, key=lambda table: table.name.endswith("_rollups")):
            await conn.execute(table.delete())
