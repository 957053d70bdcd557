"""Alembic environment: runs on the connection that ``sessiongraph.db.migrate`` hands in."""

from __future__ import annotations

from alembic import context

from sessiongraph.db.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    compare_type=True,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
