"""Session rollups by UTC month too: a month's rows, beside its days', so a window of
months or all time reads one row per month, status, workflow (and model) instead of
one per day.

The triggers of 0003 are replaced by the same ones with a month grain (``m``); the
month rows of the sessions already stored are summed from their day rows (sums are
additive). Writers wait while this runs, so no write is summed twice or missed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import importlib

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The statements of 0003, with its grains or these: a revision never changes.
_ROLLUPS = importlib.import_module("sessiongraph.db.migrations.versions.0003_session_rollups")
GRAINS = (*_ROLLUPS.GRAINS, ("m", "month"))
TABLES = {
    "session_rollups": ("sessions", *_ROLLUPS.TOKENS, "total_cost_usd"),
    "session_model_rollups": ("entries", "cost"),
}


def upgrade() -> None:
    _replace_triggers(GRAINS)
    for statement in backfill_statements(op.get_bind().dialect.name == "sqlite"):
        op.execute(statement)


def downgrade() -> None:
    _replace_triggers(_ROLLUPS.GRAINS)
    for table in TABLES:
        op.execute(f"DELETE FROM {table} WHERE grain = 'm'")


def _replace_triggers(grains: tuple[tuple[str, str], ...]) -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite writes one at a time: this transaction already excludes the others.
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER sessions_rollups_{name}")
        for statement in _ROLLUPS.sqlite_triggers(grains):
            op.execute(statement)
    else:
        op.execute("LOCK TABLE sessions IN SHARE ROW EXCLUSIVE MODE")
        op.execute(_ROLLUPS.postgresql_rollup_function(grains, replace=True))


def backfill_statements(sqlite: bool) -> list[str]:
    """The statements summing the day rows into month rows (none there yet): also run
    by bench/scale.py after it sums loaded sessions into the rollups."""
    start = _ROLLUPS.sqlite_start if sqlite else _ROLLUPS.postgresql_start
    month = start("month", "bucket")
    statements = []
    for table, sums in TABLES.items():
        keys = "status, workflow_id" + (", model" if table == "session_model_rollups" else "")
        statements.append(
            f"""
            INSERT INTO {table} (grain, bucket, {keys}, {", ".join(sums)})
            SELECT 'm', {month}, {keys}, {", ".join(f"sum({name})" for name in sums)}
            FROM {table} WHERE grain = 'd'
            GROUP BY {month}, {keys}
            """
        )
    return statements
