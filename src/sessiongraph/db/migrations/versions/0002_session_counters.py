"""Session counters, updated_at and per-session tool usage, backfilled from the operations.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from sessiongraph.db.columns import Identifier, UTCDateTime

# Spelled out, not imported: a migration must not change when the code does.
COUNTERS = (
    "operation_count",
    "tool_call_count",
    "failed_operation_count",
    "subagent_count",
    "commit_count",
)
SORT_COLUMNS = ("operation_count", "tool_call_count", "failed_operation_count", "updated_at")
FILTER_COLUMNS = ("agent_model", "agent_provider")
TOOL_CALL_TYPES = "'tool_execution_completed', 'tool_execution_failed', 'tool_blocked'"
TOOL_FAILURE_TYPES = "'tool_execution_failed', 'tool_blocked'"
#: What SQLite needs to add a NOT NULL column to rows already there; the backfill
#: replaces it in every row, and every insert gives its own value.
SQLITE_NO_TIME = "1970-01-01 00:00:00.000000"

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name in COUNTERS:
        op.add_column(
            "sessions",
            sa.Column(name, sa.Integer(), server_default=sa.text("0"), nullable=False),
        )
    if sqlite:
        # SQLite adds a NOT NULL column only with a constant default.
        op.add_column(
            "sessions",
            sa.Column(
                "updated_at",
                UTCDateTime(),
                server_default=sa.text(f"'{SQLITE_NO_TIME}'"),
                nullable=False,
            ),
        )
    else:
        op.add_column("sessions", sa.Column("updated_at", UTCDateTime(), nullable=True))
    op.create_table(
        "session_tools",
        sa.Column("session_id", Identifier, nullable=False),
        sa.Column(
            "tool_name",
            sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("total_duration_seconds", sa.Float(), nullable=False),
        sa.Column("duration_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("session_id", "tool_name"),
    )
    _backfill(sqlite)
    if not sqlite:
        op.alter_column("sessions", "updated_at", nullable=False)
    for column in SORT_COLUMNS:
        for key in ((column,), ("status", column), ("workflow_id", column)):
            op.create_index(f"ix_sessions_{'_'.join(key)}", "sessions", [*key, "id"])
    for column in FILTER_COLUMNS:
        op.create_index(
            f"ix_sessions_{column}_started_at", "sessions", [column, "started_at", "id"]
        )


def _backfill(sqlite: bool) -> None:
    """Counters and tool usage from the stored operations; ``updated_at`` the latest
    instant the session's data shows (start, completion, an operation's timestamp),
    never later than now, or now when it shows none."""
    op.execute(
        f"""
        UPDATE sessions SET
            operation_count = counted.operations,
            tool_call_count = counted.tool_calls,
            failed_operation_count = counted.failed,
            subagent_count = counted.subagents,
            commit_count = counted.commits
        FROM (
            SELECT
                session_id,
                count(*) AS operations,
                sum(CASE WHEN operation_type IN ({TOOL_CALL_TYPES}) THEN 1 ELSE 0 END)
                    AS tool_calls,
                sum(CASE WHEN success THEN 0 ELSE 1 END) AS failed,
                sum(CASE WHEN operation_type = 'subagent_started' THEN 1 ELSE 0 END)
                    AS subagents,
                sum(CASE WHEN operation_type = 'git_commit' THEN 1 ELSE 0 END) AS commits
            FROM operations
            GROUP BY session_id
        ) AS counted
        WHERE sessions.id = counted.session_id
        """
    )
    op.execute(
        f"""
        INSERT INTO session_tools
            (session_id, tool_name, calls, failures, total_duration_seconds, duration_count)
        SELECT
            session_id,
            tool_name,
            count(*),
            sum(
                CASE WHEN operation_type IN ({TOOL_FAILURE_TYPES}) OR NOT success
                THEN 1 ELSE 0 END
            ),
            coalesce(sum(duration_seconds), 0),
            count(duration_seconds)
        FROM operations
        WHERE operation_type IN ({TOOL_CALL_TYPES}) AND tool_name IS NOT NULL
        GROUP BY session_id, tool_name
        """
    )
    last_operation = "(SELECT max(o.timestamp) FROM operations o WHERE o.session_id = sessions.id)"
    if sqlite:
        # Timestamps are fixed-width UTC text here: text order is time order. Unlike
        # PostgreSQL's GREATEST, SQLite's max() of several values is NULL if one is.
        now = "(strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')"
        latest = (
            f"nullif(max(coalesce(started_at, ''), coalesce(completed_at, ''), "
            f"coalesce({last_operation}, '')), '')"
        )
        op.execute(f"UPDATE sessions SET updated_at = min(coalesce({latest}, {now}), {now})")
    else:
        latest = f"greatest(started_at, completed_at, {last_operation})"
        op.execute(f"UPDATE sessions SET updated_at = least(coalesce({latest}, now()), now())")


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for column in FILTER_COLUMNS:
        op.drop_index(f"ix_sessions_{column}_started_at", "sessions")
    for column in SORT_COLUMNS:
        for key in ((column,), ("status", column), ("workflow_id", column)):
            op.drop_index(f"ix_sessions_{'_'.join(key)}", "sessions")
    op.drop_table("session_tools")
    for name in (*COUNTERS, "updated_at"):
        if sqlite:  # natively (SQLite 3.35+): batch mode would copy the table
            op.execute(f"ALTER TABLE sessions DROP COLUMN {name}")
        else:
            op.drop_column("sessions", name)
