"""The async engine and schema creation."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from sessiongraph.config import Settings
from sessiongraph.db.tables import metadata


def create_engine(settings: Settings) -> AsyncEngine:
    """An engine for ``settings.database_url``; SQLite gets WAL and foreign keys."""
    url = make_url(settings.database_url)
    engine = create_async_engine(url, echo=settings.echo_sql, pool_pre_ping=not _is_sqlite(url))
    if _is_sqlite(url):
        sa.event.listen(engine.sync_engine, "connect", _configure_sqlite)
    return engine


def _is_sqlite(url: sa.URL) -> bool:
    return url.get_backend_name() == "sqlite"


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


async def create_schema(engine: AsyncEngine) -> None:
    """Create every table and index that does not exist yet."""
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


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
