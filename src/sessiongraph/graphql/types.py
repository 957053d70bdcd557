"""The GraphQL object types of SPEC §2, each built from a database row."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Self, TypeVar

import strawberry
from sqlalchemy.engine import RowMapping
from strawberry import UNSET

from sessiongraph import display
from sessiongraph.db import queries
from sessiongraph.db.queries import OperationFilter, SessionFilter
from sessiongraph.errors import BadUserInput
from sessiongraph.graphql.context import Info
from sessiongraph.graphql.cursors import PageCursors, ValueKind
from sessiongraph.graphql.loaders import OperationPageKey
from sessiongraph.graphql.scalars import JSON
from sessiongraph.graphql.selection import operation_columns
from sessiongraph.inputs import parse_decimal

OPERATIONS_SCOPE = "operations"
MAX_OPERATIONS_PAGE = 1000

T = TypeVar("T")


@strawberry.enum(description="Where a session is in its life.")
class SessionStatus(Enum):
    PENDING = strawberry.enum_value("pending", description="Created, not started yet.")
    RUNNING = strawberry.enum_value("running", description="Started and not finished.")
    COMPLETED = strawberry.enum_value("completed", description="Finished successfully.")
    FAILED = strawberry.enum_value("failed", description="Finished with an error.")
    CANCELLED = strawberry.enum_value("cancelled", description="Stopped before finishing.")


@strawberry.type(description="A page position, as in the Relay connection specification.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More items follow this page.")
    _cursors: strawberry.Private[PageCursors]

    @strawberry.field(description="Cursor of the last item; pass it as `after` for the next page.")
    def end_cursor(self) -> str | None:
        return self._cursors.last()

    has_previous_page: bool = strawberry.field(
        description="Items precede this page (true when `after` was given)."
    )

    @strawberry.field(description="Cursor of the first item.")
    def start_cursor(self) -> str | None:
        return self._cursors.first()


@strawberry.type(description="A workflow: the orchestration that started sessions.")
class Workflow:
    id: str = strawberry.field(description="Workflow id.")
    name: str | None = strawberry.field(description="Human-readable name, when known.")


@strawberry.type(description="The cost one model accounts for within a session.")
class ModelCost:
    model: str = strawberry.field(description="Model name, e.g. claude-sonnet-4-6.")
    cost_usd: Decimal = strawberry.field(description="Cost in US dollars.")


@strawberry.type(
    description="Git facts recorded with an operation. Every field is optional; "
    "stored keys this version does not know are ignored."
)
class GitInfo:
    operation: str | None = strawberry.field(description="Git action: commit, push, ...")
    sha: str | None = strawberry.field(description="Commit SHA.")
    branch: str | None = strawberry.field(description="Branch the action ran on.")
    repo: str | None = strawberry.field(description="Repository, owner/name.")
    message: str | None = strawberry.field(description="Commit message.")
    prev_branch: str | None = strawberry.field(description="Branch before a branch change.")
    is_clone: bool | None = strawberry.field(description="Whether the action was a clone.")
    remote: str | None = strawberry.field(description="Remote name, e.g. origin.")
    author: str | None = strawberry.field(description="Commit author.")
    files_changed: int | None = strawberry.field(description="Files changed.")
    insertions: int | None = strawberry.field(description="Lines inserted.")
    deletions: int | None = strawberry.field(description="Lines deleted.")
    commits_count: int | None = strawberry.field(description="Commits pushed or merged.")
    commit_range: str | None = strawberry.field(description="Commit range, e.g. abc..def.")
    remote_url: str | None = strawberry.field(description="URL of the remote.")
    details: str | None = strawberry.field(description="Free-form details.")
    from_branch: str | None = strawberry.field(description="Source branch of a merge.")
    to_branch: str | None = strawberry.field(description="Target branch of a merge.")
    estimated_tokens_added: int | None = strawberry.field(
        description="Estimated tokens the change added to the context."
    )
    estimated_tokens_removed: int | None = strawberry.field(
        description="Estimated tokens the change removed from the context."
    )

    @classmethod
    def from_stored(cls, stored: Any) -> GitInfo | None:
        """Read stored git data leniently: unknown keys dropped, bad values as null."""
        if not isinstance(stored, dict):
            return None
        values: dict[str, Any] = {}
        for name, kind in _GIT_FIELD_KINDS.items():
            raw = stored.get(name)
            values[name] = None if raw is None else kind(raw)
        return cls(**values)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _as_int(value: Any) -> int | None:
    """An integer that fits GraphQL's Int, from an int, an integral float or a numeric string."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if -(2**31) <= number < 2**31 else None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _as_bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


_GIT_INT_FIELDS = {
    "files_changed",
    "insertions",
    "deletions",
    "commits_count",
    "estimated_tokens_added",
    "estimated_tokens_removed",
}
_GIT_FIELD_KINDS = {
    name: _as_bool if name == "is_clone" else _as_int if name in _GIT_INT_FIELDS else _as_text
    for name in GitInfo.__annotations__
}


def tool_input_object(stored: Any) -> dict[str, Any] | None:
    """Tool input as a JSON object; anything else stored is kept as ``{"raw": text}``."""
    if stored is None or isinstance(stored, dict):
        return stored
    return {"raw": stored if isinstance(stored, str) else json.dumps(stored)}


@strawberry.type(
    description="One recorded event of a session: a tool call, a message, a git action, "
    "a lifecycle event."
)
class Operation:
    operation_id: str = strawberry.field(description="Operation id, unique across sessions.")
    session_id: str = strawberry.field(description="Id of the session that recorded it.")
    operation_type: str = strawberry.field(
        description="What happened, e.g. tool_execution_started, message_response, "
        "git_commit. An open set: new types appear over time."
    )
    timestamp: datetime | None = strawberry.field(description="When it happened.")
    duration_seconds: float | None = strawberry.field(description="How long it took.")
    success: bool = strawberry.field(description="False when the operation failed.")
    input_tokens: int | None = strawberry.field(description="Input tokens it used.")
    output_tokens: int | None = strawberry.field(description="Output tokens it produced.")
    total_tokens: int | None = strawberry.field(description="Total tokens.")
    tool_name: str | None = strawberry.field(description="Tool name, e.g. Bash, Edit.")
    tool_use_id: str | None = strawberry.field(
        description="Pairs a tool call's started and completed operations."
    )
    tool_input: JSON | None = strawberry.field(
        description="Tool input preview as a JSON object (a non-object preview comes as "
        '{"raw": text}). Heavy: read from the database only when selected.'
    )
    tool_output: str | None = strawberry.field(
        description="Tool output preview. Heavy: read only when selected."
    )
    message_role: str | None = strawberry.field(description="Message role: user, assistant.")
    message_content: str | None = strawberry.field(
        description="Message text, possibly tens of KB. Heavy: read only when selected."
    )
    thinking_content: str | None = strawberry.field(
        description="Thinking text, possibly tens of KB. Heavy: read only when selected."
    )
    git: GitInfo | None = strawberry.field(description="Git facts, for git operations.")

    @strawberry.field(description="Commit SHA.", deprecation_reason="Use git.sha")
    def git_sha(self) -> str | None:
        return self.git.sha if self.git else None

    @strawberry.field(description="Commit message.", deprecation_reason="Use git.message")
    def git_message(self) -> str | None:
        return self.git.message if self.git else None

    @strawberry.field(description="Branch.", deprecation_reason="Use git.branch")
    def git_branch(self) -> str | None:
        return self.git.branch if self.git else None

    @strawberry.field(description="Repository.", deprecation_reason="Use git.repo")
    def git_repo(self) -> str | None:
        return self.git.repo if self.git else None

    @classmethod
    def from_rows(cls, rows: Sequence[RowMapping]) -> list[Self]:
        """Build from rows of one projection; the columns it did not read stay null."""
        if not rows:
            return []
        read = set(rows[0].keys())  # a set: asking a RowMapping costs ten times more
        tool_input = "tool_input" in read
        tool_output = "tool_output" in read
        message_content = "message_content" in read
        thinking_content = "thinking_content" in read
        git = "git" in read
        return [
            cls(
                operation_id=row["operation_id"],
                session_id=row["session_id"],
                operation_type=row["operation_type"],
                timestamp=row["timestamp"],
                duration_seconds=row["duration_seconds"],
                success=bool(row["success"]),
                input_tokens=row["input_tokens"],
                output_tokens=row["output_tokens"],
                total_tokens=row["total_tokens"],
                tool_name=row["tool_name"],
                tool_use_id=row["tool_use_id"],
                tool_input=tool_input_object(row["tool_input"]) if tool_input else None,  # type: ignore[arg-type]
                tool_output=row["tool_output"] if tool_output else None,
                message_role=row["message_role"],
                message_content=row["message_content"] if message_content else None,
                thinking_content=row["thinking_content"] if thinking_content else None,
                git=GitInfo.from_stored(row["git"]) if git else None,
            )
            for row in rows
        ]


@strawberry.type(description="An operation and its cursor.")
class OperationEdge:
    cursor: str = strawberry.field(description="Pass as `after` to continue after this one.")
    node: Operation = strawberry.field(description="The operation.")


@strawberry.type(description="A page of a session's operations, oldest first.")
class OperationConnection:
    nodes: list[Operation] = strawberry.field(description="The operations of this page.")
    page_info: PageInfo = strawberry.field(description="Where this page is.")
    _session_id: strawberry.Private[str]
    _filters: strawberry.Private[OperationFilter]
    _cursors: strawberry.Private[PageCursors]

    @strawberry.field(description="The operations of this page with their cursors.")
    def edges(self) -> list[OperationEdge]:
        return [
            OperationEdge(cursor=cursor, node=node)
            for cursor, node in zip(self._cursors.all(), self.nodes, strict=True)
        ]

    @strawberry.field(description="Operations of the session matching the filters, all pages.")
    async def total_count(self, info: Info) -> int:
        return await info.context.loaders.operation_count_by_session.load(
            (self._session_id, self._filters)
        )


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
    #: Values of loader-backed fields read ahead for a whole page (see ``prefetch``).
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
            repos=[r for r in _as_list(row["repos"]) if isinstance(r, str)],
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
            metadata=row["metadata"] if isinstance(row["metadata"], dict) else {},  # type: ignore[arg-type]
            _cost_by_model=row["cost_by_model"] if isinstance(row["cost_by_model"], dict) else {},
        )

    @strawberry.field(description="Name of the workflow, looked up from the workflow table.")
    async def workflow_name(self, info: Info) -> str | None:
        if "workflow_name" in self._prefetched:
            return self._prefetched["workflow_name"]  # type: ignore[no-any-return]
        workflow = await self.workflow(info)
        return workflow.name if workflow else None

    @strawberry.field(description="The workflow that ran the session, when it is known.")
    async def workflow(self, info: Info) -> Workflow | None:
        if "workflow" in self._prefetched:
            return self._prefetched["workflow"]  # type: ignore[no-any-return]
        if self.workflow_id is None:
            return None
        row = await info.context.loaders.workflow_by_id.load(self.workflow_id)
        return Workflow(id=row["id"], name=row["name"]) if row else None

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

    @strawberry.field(description="Number of operations the session recorded.")
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
        keyset = (
            info.context.cursors.decode(
                after, scope=OPERATIONS_SCOPE, value_kind=ValueKind.DATETIME, id_type=int
            )
            if after is not None
            else None
        )
        filters = OperationFilter(
            types=tuple(dict.fromkeys(types)) if types else None,
            tool_name=tool_name,
            success=success,
        )
        columns = _operation_columns(info)
        rows = await info.context.loaders.operation_page_by_session.load(
            OperationPageKey(self.id, filters, keyset, limit + 1, columns)
        )
        page = rows[:limit]
        cursors = PageCursors(info.context.cursors, OPERATIONS_SCOPE, "timestamp", page)
        return OperationConnection(
            nodes=Operation.from_rows(page),
            page_info=PageInfo(
                has_next_page=len(rows) > limit,
                has_previous_page=after is not None,
                _cursors=cursors,
            ),
            _session_id=self.id,
            _filters=filters,
            _cursors=cursors,
        )


def given(value: T | None) -> T | None:
    """``None`` for an argument the client left out (Strawberry passes ``UNSET``)."""
    return None if value is UNSET else value


def check_first(first: int | None, *, default: int, maximum: int) -> int:
    """The page size; ``BadUserInput`` outside ``1..maximum`` (null means the default)."""
    if first is None:
        return default
    if not 1 <= first <= maximum:
        raise BadUserInput(
            f"`first` must be between 1 and {maximum}, got {first}", argumentName="first"
        )
    return first


def _operation_columns(info: Info) -> frozenset[str]:
    """The column plan of this ``operations`` field, computed once per request.

    Every session of a list resolves the same field node, so the plan is
    cached by that node. Strawberry's public ``selected_fields`` would rebuild
    the selection tree for each session; the raw graphql-core info has the nodes.
    """
    raw = info._raw_info
    plans = info.context.operation_columns
    key = id(raw.field_nodes[0])
    columns = plans.get(key)
    if columns is None:
        columns = plans[key] = operation_columns(raw.field_nodes, raw.fragments)
    return columns


@strawberry.type(description="A session and its cursor.")
class SessionEdge:
    cursor: str = strawberry.field(description="Pass as `after` to continue after this one.")
    node: Session = strawberry.field(description="The session.")


@strawberry.type(description="A page of sessions.")
class SessionConnection:
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


#: Session fields backed by loaders that ``prefetch`` reads for a whole page at once.
PREFETCHABLE = {"workflowName", "workflow", "operationCount"}


async def prefetch(info: Info, sessions: list[Session], selected: set[str]) -> None:
    """Read the loader-backed fields among ``selected`` for every session of a page in one
    go, so each session answers them from memory: the same statements as field by field,
    without one coroutine per session and field."""
    selected = selected & PREFETCHABLE
    if not selected or not sessions:
        return
    loaders = info.context.loaders
    wants_workflow = bool(selected & {"workflowName", "workflow"})
    wants_count = "operationCount" in selected
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
            workflow = Workflow(id=row["id"], name=row["name"]) if row else None
            session._prefetched["workflow"] = workflow
            session._prefetched["workflow_name"] = workflow.name if workflow else None
    if wants_count:
        for session, count in zip(sessions, counts, strict=True):
            session._prefetched["operation_count"] = count
