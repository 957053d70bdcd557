"""Session: one agent run, its workflow and costs, and a page of sessions."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Self

import strawberry
from sqlalchemy.engine import RowMapping
from strawberry import UNSET

from sessiongraph import display
from sessiongraph.db import queries
from sessiongraph.db.queries import OperationFilter, SessionFilter
from sessiongraph.errors import BadUserInput
from sessiongraph.graphql.arguments import check_first, given
from sessiongraph.graphql.context import Info
from sessiongraph.graphql.cursors import PageCursors, ValueKind
from sessiongraph.graphql.fields import PREFETCHED, field_plan, python_name, selected_on
from sessiongraph.graphql.loaders import OperationPageKey
from sessiongraph.graphql.scalars import JSON
from sessiongraph.graphql.types.operation import (
    Operation,
    OperationConnection,
    operation_columns,
)
from sessiongraph.graphql.types.pagination import Connection, Page, PageInfo
from sessiongraph.inputs import parse_decimal
from sessiongraph.stored import as_list, as_object

OPERATIONS_SCOPE = "operations"
MAX_OPERATIONS_PAGE = 1000


@strawberry.enum(description="Where a session is in its life.")
class SessionStatus(Enum):
    PENDING = strawberry.enum_value("pending", description="Created, not started yet.")
    RUNNING = strawberry.enum_value("running", description="Started and not finished.")
    COMPLETED = strawberry.enum_value("completed", description="Finished successfully.")
    FAILED = strawberry.enum_value("failed", description="Finished with an error.")
    CANCELLED = strawberry.enum_value("cancelled", description="Stopped before finishing.")


@strawberry.type(description="A workflow: the orchestration that started sessions.")
class Workflow:
    id: str = strawberry.field(description="Workflow id.")
    name: str | None = strawberry.field(description="Human-readable name, when known.")

    @classmethod
    def from_row(cls, row: RowMapping | None) -> Workflow | None:
        return cls(id=row["id"], name=row["name"]) if row else None


@strawberry.type(description="The cost one model accounts for within a session.")
class ModelCost:
    model: str = strawberry.field(description="Model name, e.g. claude-sonnet-4-6.")
    cost_usd: Decimal = strawberry.field(description="Cost in US dollars.")


#: Metadata of a loader-backed field that a page reads ahead for all its sessions
#: (``prefetch``); its resolver answers from ``_prefetched`` when the value is there.
READ_AHEAD = {PREFETCHED: True}


@strawberry.type(description="An AI-agent session: one agent run and what it recorded.")
class Session:
    id: str = strawberry.field(description="Session id (a UUID).")
    workflow_id: str | None = strawberry.field(description="Id of the workflow that ran it.")
    execution_id: str | None = strawberry.field(description="Workflow execution id.")
    phase_id: str | None = strawberry.field(description="Phase id: a slug or a UUID.")
    milestone_id: str | None = strawberry.field(description="Milestone id.")
    status: SessionStatus = strawberry.field(description="Where the session is in its life.")
    agent_provider: str | None = strawberry.field(
        description="Agent provider: claude, openai, mock, unknown, ..."
    )
    agent_model: str | None = strawberry.field(description="Model, e.g. claude-sonnet-4-6.")
    repos: list[str] = strawberry.field(description="Repositories worked on, owner/repo.")
    workspace_path: str | None = strawberry.field(description="Workspace directory.")
    input_tokens: int = strawberry.field(description="Input tokens.")
    output_tokens: int = strawberry.field(description="Output tokens.")
    cache_creation_tokens: int = strawberry.field(description="Tokens written to the cache.")
    cache_read_tokens: int = strawberry.field(description="Tokens read from the cache.")
    total_tokens: int = strawberry.field(description="All tokens.")
    total_cost_usd: Decimal = strawberry.field(description="Total cost in US dollars.")
    started_at: datetime | None = strawberry.field(description="When it started.")
    completed_at: datetime | None = strawberry.field(description="When it finished.")
    duration_seconds: float | None = strawberry.field(description="Run time in seconds.")
    error_message: str | None = strawberry.field(description="Why it failed, when it did.")
    metadata: JSON = strawberry.field(description="Free-form metadata (a JSON object).")
    _cost_by_model: strawberry.Private[dict[str, Any]]
    #: Values of READ_AHEAD fields read for a whole page, by Python name (``prefetch``).
    _prefetched: strawberry.Private[dict[str, Any]] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_row(cls, row: RowMapping) -> Self:
        return cls(
            id=row["id"],
            workflow_id=row["workflow_id"],
            execution_id=row["execution_id"],
            phase_id=row["phase_id"],
            milestone_id=row["milestone_id"],
            status=SessionStatus[row["status"].upper()],
            agent_provider=row["agent_provider"],
            agent_model=row["agent_model"],
            repos=[r for r in as_list(row["repos"]) if isinstance(r, str)],
            workspace_path=row["workspace_path"],
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            cache_creation_tokens=row["cache_creation_tokens"],
            cache_read_tokens=row["cache_read_tokens"],
            total_tokens=row["total_tokens"],
            total_cost_usd=row["total_cost_usd"],
            started_at=row["started_at"],
            completed_at=row["completed_at"],
            duration_seconds=row["duration_seconds"],
            error_message=row["error_message"],
            metadata=as_object(row["metadata"]),  # type: ignore[arg-type]
            _cost_by_model=as_object(row["cost_by_model"]),
        )

    @strawberry.field(
        description="Name of the workflow, looked up from the workflow table.",
        metadata=READ_AHEAD,
    )
    async def workflow_name(self, info: Info) -> str | None:
        if "workflow_name" in self._prefetched:
            return self._prefetched["workflow_name"]  # type: ignore[no-any-return]
        workflow = await self.workflow(info)
        return workflow.name if workflow else None

    @strawberry.field(
        description="The workflow that ran the session, when it is known.", metadata=READ_AHEAD
    )
    async def workflow(self, info: Info) -> Workflow | None:
        if "workflow" in self._prefetched:
            return self._prefetched["workflow"]  # type: ignore[no-any-return]
        if self.workflow_id is None:
            return None
        return Workflow.from_row(await info.context.loaders.workflow_by_id.load(self.workflow_id))

    @strawberry.field(description="Phase for display: `research_phase` → Research Phase.")
    def phase_display(self) -> str | None:
        return display.format_phase(self.phase_id)

    @strawberry.field(description="Model for display: claude-sonnet-4-6 → Sonnet 4.6.")
    def agent_model_display(self) -> str | None:
        return display.format_model_compact(self.agent_model)

    @strawberry.field(description="Repositories for display: `foo +1`.")
    def repos_display(self) -> str | None:
        return display.format_repos(self.repos)

    @strawberry.field(description="Input tokens for display: 1.2k.")
    def input_tokens_display(self) -> str:
        return display.format_tokens(self.input_tokens)

    @strawberry.field(description="Output tokens for display.")
    def output_tokens_display(self) -> str:
        return display.format_tokens(self.output_tokens)

    @strawberry.field(description="Cache-creation tokens for display.")
    def cache_creation_tokens_display(self) -> str:
        return display.format_tokens(self.cache_creation_tokens)

    @strawberry.field(description="Cache-read tokens for display.")
    def cache_read_tokens_display(self) -> str:
        return display.format_tokens(self.cache_read_tokens)

    @strawberry.field(description="All tokens for display.")
    def total_tokens_display(self) -> str:
        return display.format_tokens(self.total_tokens)

    @strawberry.field(description="Total cost for display: $1.23, <$0.01, $1.2k.")
    def total_cost_display(self) -> str:
        return display.format_cost(self.total_cost_usd)

    @strawberry.field(description="Duration for display: 2m 14s, 1h 2m, — when unknown.")
    def duration_display(self) -> str:
        return display.format_duration_seconds(self.duration_seconds)

    @strawberry.field(description="Cost per model, most expensive first.")
    def cost_by_model(self) -> list[ModelCost]:
        costs = []
        for model, raw in self._cost_by_model.items():
            try:
                costs.append(ModelCost(model=model, cost_usd=parse_decimal(raw)))
            except BadUserInput:
                continue  # an unreadable stored figure is left out, not fatal
        return sorted(costs, key=lambda c: (-c.cost_usd, c.model))

    @strawberry.field(description="Number of operations the session recorded.", metadata=READ_AHEAD)
    async def operation_count(self, info: Info) -> int:
        if "operation_count" in self._prefetched:
            return self._prefetched["operation_count"]  # type: ignore[no-any-return]
        return await info.context.loaders.operation_count_by_session.load(
            (self.id, OperationFilter())
        )

    @strawberry.field(
        description="Oldest first. Batch-loaded for every session in the response at once."
    )
    async def operations(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description="Page size, 1..1000.")] = 100,
        after: Annotated[
            str | None, strawberry.argument(description="Cursor from a previous page.")
        ] = UNSET,
        types: Annotated[
            list[str] | None,
            strawberry.argument(
                description="Only these operation types (operation_type IN ...); "
                "an empty list does not filter."
            ),
        ] = UNSET,
        tool_name: Annotated[
            str | None, strawberry.argument(description="Only this tool's operations.")
        ] = UNSET,
        success: Annotated[
            bool | None, strawberry.argument(description="Only (un)successful operations.")
        ] = UNSET,
    ) -> OperationConnection:
        after, types, tool_name, success = (
            given(after),
            given(types),
            given(tool_name),
            given(success),
        )
        limit = check_first(first, default=100, maximum=MAX_OPERATIONS_PAGE)
        codec = info.context.cursors
        keyset = (
            codec.decode(after, scope=OPERATIONS_SCOPE, value_kind=ValueKind.DATETIME, id_type=int)
            if after is not None
            else None
        )
        filters = OperationFilter(
            types=tuple(dict.fromkeys(types)) if types else None,
            tool_name=tool_name,
            success=success,
        )
        rows = await info.context.loaders.operation_page_by_session.load(
            OperationPageKey(self.id, filters, keyset, limit + 1, operation_columns(info))
        )
        page = Page.of(
            rows,
            limit=limit,
            after_given=after is not None,
            codec=codec,
            scope=OPERATIONS_SCOPE,
            column="timestamp",
        )
        return OperationConnection(
            nodes=Operation.from_rows(page.rows),
            page_info=page.info,
            _session_id=self.id,
            _filters=filters,
            _cursors=page.cursors,
        )


@strawberry.type(description="A session and its cursor.")
class SessionEdge:
    cursor: str = strawberry.field(description="Pass as `after` to continue after this one.")
    node: Session = strawberry.field(description="The session.")


@strawberry.type(description="A page of sessions.")
class SessionConnection(Connection):
    nodes: list[Session] = strawberry.field(description="The sessions of this page.")
    page_info: PageInfo = strawberry.field(description="Where this page is.")
    _filters: strawberry.Private[SessionFilter]
    _cursors: strawberry.Private[PageCursors]

    @strawberry.field(description="The sessions of this page with their cursors.")
    def edges(self) -> list[SessionEdge]:
        return [
            SessionEdge(cursor=cursor, node=node)
            for cursor, node in zip(self._cursors.all(), self.nodes, strict=True)
        ]

    @strawberry.field(
        description="All sessions matching the filters, not the page length. "
        "Counted only when selected."
    )
    async def total_count(self, info: Info) -> int:
        return await queries.count_sessions(engine=info.context.engine, filters=self._filters)


def read_ahead_fields(info: Info) -> set[str]:
    """The READ_AHEAD fields selected on the sessions under this field, by Python name;
    all of them when the plan does not know the field."""
    field = field_plan(info)
    if field is None:
        return set(_READ_AHEAD_NAMES)
    names: set[str] | None = field.memo.get("read_ahead")
    if names is None:
        names = field.memo["read_ahead"] = {
            name
            for selected in selected_on(field, "Session")
            if selected.metadata.get(PREFETCHED) and (name := python_name(selected)) is not None
        }
    return names


_READ_AHEAD_NAMES = frozenset(
    f.python_name
    for f in Session.__strawberry_definition__.fields  # type: ignore[attr-defined]
    if f.metadata.get(PREFETCHED)
)


async def prefetch(info: Info, sessions: list[Session]) -> None:
    """Read the READ_AHEAD fields selected under this field for every session of a
    page in one go, so each session answers them from memory: the same statements
    as field by field, without one coroutine per session and field."""
    if not sessions:
        return
    wanted = read_ahead_fields(info)
    if not wanted:
        return
    loaders = info.context.loaders
    wants_workflow = bool(wanted & {"workflow_name", "workflow"})
    wants_count = "operation_count" in wanted
    ids = sorted({s.workflow_id for s in sessions if s.workflow_id is not None})
    keys = [(s.id, OperationFilter()) for s in sessions]
    workflows, counts = await asyncio.gather(
        loaders.workflow_by_id.load_many(ids if wants_workflow else []),
        loaders.operation_count_by_session.load_many(keys if wants_count else []),
    )
    if wants_workflow:
        rows = {row["id"]: row for row in workflows if row is not None}
        for session in sessions:
            row = rows.get(session.workflow_id) if session.workflow_id is not None else None
            workflow = Workflow.from_row(row)
            session._prefetched["workflow"] = workflow
            session._prefetched["workflow_name"] = workflow.name if workflow else None
    if wants_count:
        for session, count in zip(sessions, counts, strict=True):
            session._prefetched["operation_count"] = count
