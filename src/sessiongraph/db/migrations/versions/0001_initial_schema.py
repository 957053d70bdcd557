"""Initial schema: workflows, sessions, operations and their indexes.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sessiongraph.db.columns import Identifier, JSONDocument, Money, UTCDateTime

# Spelled out, not imported: a migration must not change when the code does.
SORT_COLUMNS = ("started_at", "completed_at", "total_cost_usd", "total_tokens", "duration_seconds")

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workflows",
        sa.Column("id", Identifier, nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "sessions",
        sa.Column("id", Identifier, nullable=False),
        sa.Column("workflow_id", Identifier, nullable=True),
        sa.Column("execution_id", sa.Text(), nullable=True),
        sa.Column("phase_id", sa.Text(), nullable=True),
        sa.Column("milestone_id", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("agent_provider", sa.Text(), nullable=True),
        sa.Column("agent_model", sa.Text(), nullable=True),
        sa.Column("repos", JSONDocument(), nullable=False),
        sa.Column("workspace_path", sa.Text(), nullable=True),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_creation_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_read_tokens", sa.BigInteger(), nullable=False),
        sa.Column("total_tokens", sa.BigInteger(), nullable=False),
        sa.Column("total_cost_usd", Money(), nullable=False),
        sa.Column("cost_by_model", JSONDocument(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("metadata", JSONDocument(), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'completed', 'failed', 'cancelled')",
            name="ck_sessions_status",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in SORT_COLUMNS:
        for key in ((column,), ("status", column), ("workflow_id", column)):
            op.create_index(f"ix_sessions_{'_'.join(key)}", "sessions", [*key, "id"])

    op.create_table(
        "operations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("operation_id", Identifier, nullable=False),
        sa.Column("session_id", Identifier, nullable=False),
        sa.Column("operation_type", sa.Text(), nullable=False),
        sa.Column("timestamp", UTCDateTime(), nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=True),
        sa.Column("output_tokens", sa.BigInteger(), nullable=True),
        sa.Column("total_tokens", sa.BigInteger(), nullable=True),
        sa.Column("tool_name", sa.Text(), nullable=True),
        sa.Column("tool_use_id", sa.Text(), nullable=True),
        sa.Column("tool_input", JSONDocument(), nullable=True),
        sa.Column("tool_output", sa.Text(), nullable=True),
        sa.Column("message_role", sa.Text(), nullable=True),
        sa.Column("message_content", sa.Text(), nullable=True),
        sa.Column("thinking_content", sa.Text(), nullable=True),
        sa.Column("git", JSONDocument(), nullable=True),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("operation_id"),
    )
    op.create_index(
        "ix_operations_session_timeline",
        "operations",
        ["session_id", sa.text("(timestamp IS NULL)"), "timestamp", "id"],
    )


def downgrade() -> None:
    op.drop_table("operations")
    op.drop_table("sessions")
    op.drop_table("workflows")
