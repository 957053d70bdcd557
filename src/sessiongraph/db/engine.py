"""The async engine and schema creation."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from sessiongraph.config import Settings
from sessiongraph.db.tables import metadata


def create_engine(settings: Settings) -> AsyncEngine:
    """An engine for ``settings.database_url``, pooled as configured.

    SQLite gets WAL and foreign keys; PostgreSQL gets the statement timeout, so
    no request can hold the database for long.
    """
    url = make_url(settings.database_url)
    pool = {
        "pool_size": settings.pool_size,
        "max_overflow": settings.max_overflow,
        "pool_timeout": settings.pool_timeout_seconds,
    }
    if settings.is_sqlite:
        engine = create_async_engine(url, echo=settings.echo_sql, **pool)
        sa.event.listen(engine.sync_engine, "connect", _configure_sqlite)
        return engine
    server_settings = {
        "application_name": "sessiongraph",
        "statement_timeout": str(settings.statement_timeout_ms),
        "timezone": "UTC",
    }
    return create_async_engine(
        url,
        echo=settings.echo_sql,
        pool_pre_ping=True,
        connect_args={"server_settings": server_settings},
        **pool,
    )


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


async def is_empty(engine: AsyncEngine) -> bool:
    """True when no table holds a row."""
    async with engine.connect() as conn:
        for table in metadata.sorted_tables:
            if await conn.scalar(sa.select(sa.literal(1)).select_from(table).limit(1)):
                return False
    return True


async def clear_data(engine: AsyncEngine) -> None:
    """Delete every row of every table, children first."""
    async with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            await conn.execute(table.delete())
