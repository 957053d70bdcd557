"""Schema migrations (Alembic), run on the application's own async engine.

Alembic is imported only when a migration runs or the history is read: checking that a
database is current, at every start, is one SELECT against ``HEAD`` (importing Alembic
took a quarter of the server's start-up).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

#: The newest migration's revision (test_migrations checks it is Alembic's head).
HEAD = "0004"

_STORED = sa.text("SELECT version_num FROM alembic_version")


class SchemaBehind(RuntimeError):
    """The database's schema is older than the code's."""


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "sessiongraph.db:migrations")
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The head of the migration scripts, as Alembic reads it."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema up to ``revision``, in one transaction."""
    from alembic import command

    def run(connection: Connection) -> None:
        command.upgrade(_config(connection), revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Take the schema back to ``revision``, in one transaction."""
    from alembic import command

    def run(connection: Connection) -> None:
        command.downgrade(_config(connection), revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def _at_head(engine: AsyncEngine) -> bool:
    """True when the version table names ``HEAD`` alone; False when it does not, or cannot
    be read (then Alembic is asked, and says why)."""
    try:
        async with engine.connect() as conn:
            stored = (await conn.execute(_STORED)).scalars().all()
    except sa.exc.DBAPIError:  # no version table yet, or a database that failed
        return False
    return list(stored) == [HEAD]


async def ensure_current(engine: AsyncEngine, *, auto_upgrade: bool) -> None:
    """Upgrade (when allowed) or refuse a database whose schema is behind the code."""
    if await _at_head(engine):
        return
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
    from alembic.runtime.migration import MigrationContext

    from sessiongraph.db.tables import metadata

    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))
