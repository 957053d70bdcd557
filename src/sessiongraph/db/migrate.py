"""Schema migrations (Alembic), run on the application's own async engine."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine


class SchemaBehind(RuntimeError):
    """The database's schema is older than the code's."""


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", "sessiongraph.db:migrations")
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


async def current_revision(engine: AsyncEngine) -> str | None:
    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema up to ``revision``, in one transaction."""

    def run(connection: Connection) -> None:
        command.upgrade(_config(connection), revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def ensure_current(engine: AsyncEngine, *, auto_upgrade: bool) -> None:
    """Upgrade (when allowed) or refuse a database whose schema is behind the code."""
    current, head = await current_revision(engine), head_revision()
    if current == head:
        return
    if auto_upgrade:
        await upgrade(engine)
        return
    raise SchemaBehind(
        f"The database schema is at revision {current or 'none (empty database)'}, "
        f"this version of sessiongraph needs {head}. "
        "Run `sessiongraph db upgrade` (with the same database URL) first."
    )


def compare(connection: Connection) -> list[Any]:
    """Differences between the tables in code and the migrated database (for tests)."""
    from alembic.autogenerate import compare_metadata

    from sessiongraph.db.tables import metadata

    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))
