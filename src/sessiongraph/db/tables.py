"""The stored tables: workflows, sessions and the operations each session recorded.

Tables are storage only; the GraphQL types in ``sessiongraph.graphql.types`` are
built from their rows and never expose these classes.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from sessiongraph.db.columns import Identifier, JSONDocument, Money, UTCDateTime

SESSION_STATUSES = ("pending", "running", "completed", "failed", "cancelled")

#: The columns sessions can be listed by.
SESSION_SORT_COLUMNS = (
    "started_at",
    "completed_at",
    "total_cost_usd",
    "total_tokens",
    "duration_seconds",
)


def _empty_object() -> dict[str, Any]:
    return {}


class WorkflowRow(SQLModel, table=True):
    __tablename__: ClassVar[str] = "workflows"

    id: str = Field(sa_type=Identifier, primary_key=True)
    name: str | None = Field(default=None, sa_type=sa.Text)


class SessionRow(SQLModel, table=True):
    __tablename__: ClassVar[str] = "sessions"
    __table_args__ = (
        sa.CheckConstraint(sa.column("status").in_(SESSION_STATUSES), name="ck_sessions_status"),
        # Per sortable column: (column, id) for the unfiltered list, and
        # (status | workflow_id, column, id) for the equality filters. Each
        # serves its order in both directions and a deep page's keyset range.
        *(
            sa.Index(f"ix_sessions_{'_'.join(key)}", *key, "id")
            for column in SESSION_SORT_COLUMNS
            for key in ((column,), ("status", column), ("workflow_id", column))
        ),
    )

    id: str = Field(sa_type=Identifier, primary_key=True)
    workflow_id: str | None = Field(default=None, sa_type=Identifier)
    execution_id: str | None = Field(default=None, sa_type=sa.Text)
    phase_id: str | None = Field(default=None, sa_type=sa.Text)
    milestone_id: str | None = Field(default=None, sa_type=sa.Text)
    status: str = Field(sa_type=sa.String(16))
    agent_provider: str | None = Field(default=None, sa_type=sa.Text)
    agent_model: str | None = Field(default=None, sa_type=sa.Text)
    repos: list[str] = Field(default_factory=list, sa_type=JSONDocument)
    workspace_path: str | None = Field(default=None, sa_type=sa.Text)
    input_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    output_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    cache_creation_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    cache_read_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    total_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    total_cost_usd: Decimal = Field(default=Decimal(0), sa_type=Money)
    #: model name -> cost in USD, as decimal strings.
    cost_by_model: dict[str, str] = Field(default_factory=dict, sa_type=JSONDocument)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    duration_seconds: float | None = Field(default=None)
    error_message: str | None = Field(default=None, sa_type=sa.Text)
    # "metadata" is reserved on declarative classes, so the attribute differs.
    metadata_: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=sa.Column("metadata", JSONDocument, nullable=False, default=_empty_object),
    )


class OperationRow(SQLModel, table=True):
    __tablename__: ClassVar[str] = "operations"
    __table_args__ = (
        # "Operations of a session in time order", NULL timestamps last: the
        # expression column lets the index deliver that order without a sort.
        sa.Index(
            "ix_operations_session_timeline",
            "session_id",
            sa.text("(timestamp IS NULL)"),
            "timestamp",
            "id",
        ),
    )

    #: Surrogate key: the tie-break of the timeline order (recording order).
    id: int | None = Field(
        default=None,
        sa_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
    )
    operation_id: str = Field(sa_type=Identifier, unique=True)
    session_id: str = Field(
        sa_type=Identifier,
        sa_column_kwargs={"nullable": False},
        foreign_key="sessions.id",
        ondelete="CASCADE",
    )
    operation_type: str = Field(sa_type=sa.Text)
    timestamp: datetime | None = Field(default=None, sa_type=UTCDateTime)
    duration_seconds: float | None = Field(default=None)
    success: bool = Field(default=True)
    input_tokens: int | None = Field(default=None, sa_type=sa.BigInteger)
    output_tokens: int | None = Field(default=None, sa_type=sa.BigInteger)
    total_tokens: int | None = Field(default=None, sa_type=sa.BigInteger)
    tool_name: str | None = Field(default=None, sa_type=sa.Text)
    tool_use_id: str | None = Field(default=None, sa_type=sa.Text)
    tool_input: Any | None = Field(default=None, sa_type=JSONDocument)
    tool_output: str | None = Field(default=None, sa_type=sa.Text)
    message_role: str | None = Field(default=None, sa_type=sa.Text)
    message_content: str | None = Field(default=None, sa_type=sa.Text)
    thinking_content: str | None = Field(default=None, sa_type=sa.Text)
    git: dict[str, Any] | None = Field(default=None, sa_type=JSONDocument)


workflows: sa.Table = WorkflowRow.__table__  # type: ignore[attr-defined]
sessions: sa.Table = SessionRow.__table__  # type: ignore[attr-defined]
operations: sa.Table = OperationRow.__table__  # type: ignore[attr-defined]
metadata = SQLModel.metadata
