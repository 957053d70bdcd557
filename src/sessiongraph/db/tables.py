"""The stored tables: workflows, sessions and the operations each session recorded.

Tables are storage only; the GraphQL types in ``sessiongraph.graphql.types`` are
built from their rows and never expose these classes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Field, SQLModel

from sessiongraph.db.columns import Identifier, JSONDocument, Money, UTCDateTime, database_clock

SESSION_STATUSES = ("pending", "running", "completed", "failed", "cancelled")

#: The columns sessions can be listed by.
SESSION_SORT_COLUMNS = (
    "started_at",
    "completed_at",
    "total_cost_usd",
    "total_tokens",
    "duration_seconds",
    "operation_count",
    "tool_call_count",
    "failed_operation_count",
    "updated_at",
)
#: Filters common enough to index, each with the default order (started_at, id).
SESSION_FILTER_COLUMNS = ("agent_model", "agent_provider")

#: Tool names compare byte-wise on every database, so ties order alike.
ToolName = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")


def _empty_object() -> dict[str, Any]:
    return {}


def _counter() -> Any:
    return Field(default=0, sa_type=sa.Integer, sa_column_kwargs={"server_default": sa.text("0")})


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
        *(
            sa.Index(f"ix_sessions_{column}_started_at", column, "started_at", "id")
            for column in SESSION_FILTER_COLUMNS
        ),
        # A window's durations (exact percentiles): on PostgreSQL from the index alone.
        sa.Index(
            "ix_sessions_started_at_durations",
            "started_at",
            postgresql_include=["duration_seconds", "workflow_id", "status"],
            postgresql_where=sa.text("duration_seconds IS NOT NULL"),
            sqlite_where=sa.text("duration_seconds IS NOT NULL"),
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
    # Counters of the session's operations, kept exact by every write of operations in
    # its own transaction (``sessiongraph.db.counters``), so that listing, sorting and
    # filtering on them never counts operations.
    operation_count: int = _counter()
    #: Of type tool_execution_completed, tool_execution_failed or tool_blocked.
    tool_call_count: int = _counter()
    #: With success = false.
    failed_operation_count: int = _counter()
    #: Of type subagent_started.
    subagent_count: int = _counter()
    #: Of type git_commit.
    commit_count: int = _counter()
    #: The database's clock (``database_clock``) when a stored value of the session last
    #: changed: set on insert by this default, and by every write that changes it.
    updated_at: datetime = Field(
        sa_column=sa.Column("updated_at", UTCDateTime, nullable=False, default=database_clock())
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


class SessionToolRow(SQLModel, table=True):
    """Per session and tool: its tool calls (operations of type tool_execution_completed,
    tool_execution_failed or tool_blocked that name a tool), kept with the counters.
    Additive: the usage of many sessions is the sum of their rows."""

    __tablename__: ClassVar[str] = "session_tools"

    session_id: str = Field(
        sa_type=Identifier, primary_key=True, foreign_key="sessions.id", ondelete="CASCADE"
    )
    tool_name: str = Field(sa_type=ToolName, primary_key=True)
    calls: int = Field(sa_type=sa.Integer)
    #: Of type tool_execution_failed or tool_blocked, or with success = false.
    failures: int = Field(sa_type=sa.Integer)
    #: Over the calls with a duration: their sum (0 when none), and how many they are.
    total_duration_seconds: float = Field(sa_type=sa.Float)
    duration_count: int = Field(sa_type=sa.Integer)


#: The grains of ``session_rollups``: sessions by the UTC hour, day and month they
#: started, and the sessions without a start (one bucket, ``UNDATED``).
ROLLUP_GRAINS = ("h", "d", "m", "u")
#: The bucket of the ``u`` grain.
UNDATED = datetime(1, 1, 1, tzinfo=UTC)
#: Summed costs: exact NUMERIC on PostgreSQL, integer units of 10^-10 dollars on SQLite
#: (``sessiongraph.db.stats.COST_UNITS``), as ``sessionStats`` sums them.
CostSum = sa.Numeric(asdecimal=True).with_variant(sa.BigInteger(), "sqlite")


def _key(sa_type: Any) -> Any:
    return Field(sa_type=sa_type, primary_key=True)


class SessionRollupRow(SQLModel, table=True):
    """What the sessions of one grain's bucket, status and workflow add up to: kept by
    triggers on ``sessions`` in the transaction of every write (migrations 0003, 0004), so that
    ``sessionStats`` over long windows reads buckets instead of sessions. Additive: the
    sums of many rows are the sums of their sessions."""

    __tablename__: ClassVar[str] = "session_rollups"

    grain: str = _key(sa.String(1))
    bucket: datetime = _key(UTCDateTime)
    status: str = _key(sa.String(16))
    #: The empty string for sessions without a workflow (an id is never blank).
    workflow_id: str = _key(Identifier)
    sessions: int = Field(sa_type=sa.BigInteger)
    input_tokens: int = Field(sa_type=sa.BigInteger)
    output_tokens: int = Field(sa_type=sa.BigInteger)
    cache_creation_tokens: int = Field(sa_type=sa.BigInteger)
    cache_read_tokens: int = Field(sa_type=sa.BigInteger)
    total_tokens: int = Field(sa_type=sa.BigInteger)
    total_cost_usd: Decimal = Field(sa_type=CostSum)


class SessionModelRollupRow(SQLModel, table=True):
    """Per grain's bucket, status, workflow and model: the sessions' ``cost_by_model``
    entries for that model that are plain decimals, how many and their summed cost."""

    __tablename__: ClassVar[str] = "session_model_rollups"

    grain: str = _key(sa.String(1))
    bucket: datetime = _key(UTCDateTime)
    status: str = _key(sa.String(16))
    #: The empty string for sessions without a workflow (an id is never blank).
    workflow_id: str = _key(Identifier)
    model: str = Field(sa_type=ToolName, primary_key=True)
    entries: int = Field(sa_type=sa.BigInteger)
    cost: Decimal = Field(sa_type=CostSum)


workflows: sa.Table = WorkflowRow.__table__  # type: ignore[attr-defined]
sessions: sa.Table = SessionRow.__table__  # type: ignore[attr-defined]
operations: sa.Table = OperationRow.__table__  # type: ignore[attr-defined]
session_tools: sa.Table = SessionToolRow.__table__  # type: ignore[attr-defined]
session_rollups: sa.Table = SessionRollupRow.__table__  # type: ignore[attr-defined]
session_model_rollups: sa.Table = SessionModelRollupRow.__table__  # type: ignore[attr-defined]
metadata = SQLModel.metadata
