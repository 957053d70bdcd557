"""Session: one agent run, its workflow and costs, and a page of sessions."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Self

import strawberry
from graphql import Undefined
from sqlalchemy.engine import Row, RowMapping
from strawberry import UNSET

from sessiongraph import display
from sessiongraph.db import queries
from sessiongraph.db.queries import Keyset, OperationFilter, ReadAhead, SessionCriteria
from sessiongraph.errors import BadUserInput
from sessiongraph.graphql.arguments import check_first, given
from sessiongraph.graphql.context import Info
from sessiongraph.graphql.cursors import CursorCodec, PageCursors, ValueKind
from sessiongraph.graphql.execution import json_page_fields
from sessiongraph.graphql.fields import (
    PREFETCHED,
    PREFETCHED_BY_PLAN,
    ROWS,
    cell,
    column,
    field_plan,
    python_name,
    selected_on,
    variables_of,
)
from sessiongraph.graphql.loaders import OperationPageKey
from sessiongraph.graphql.plan import FieldPlan
from sessiongraph.graphql.scalars import JSON
from sessiongraph.graphql.types.node import Node
from sessiongraph.graphql.types.operation import (
    OperationConnection,
    columns_of,
)
from sessiongraph.graphql.types.pagination import Connection, Page, PageInfo
from sessiongraph.graphql.types.tool import ToolUsage
from sessiongraph.inputs import parse_decimal
from sessiongraph.stored import as_list, as_object, saturated_int

OPERATIONS_SCOPE = "operations"
_UNFILTERED = OperationFilter()
MAX_OPERATIONS_PAGE = 1000
MAX_TOOL_USAGE = 100
DEFAULT_TOOL_USAGE = 20


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


def _status(stored: str) -> SessionStatus:
    return SessionStatus[stored.upper()]


def _repos(stored: Any) -> list[str]:
    return [r for r in as_list(stored) if isinstance(r, str)]


def _repos_display(stored: Any) -> str | None:
    return display.format_repos(_repos(stored))


def _cache_hit_ratio(read: int, input_tokens: int, creation: int) -> float | None:
    read, input_tokens, creation = map(saturated_int, (read, input_tokens, creation))
    tokens = input_tokens + read + creation
    return read / tokens if tokens else None


def _tokens_display(stored: int) -> str:
    """A token count for display, of the count its ``Int`` field gives."""
    return display.format_tokens(saturated_int(stored))


def _as_read(value: Any) -> Any:
    """A value the page's statement read along (``ReadAhead``), as the resolver has it."""
    return value


#: Metadata of a loader-backed field that a page reads ahead for all its sessions
#: (``prefetch``); its resolver answers from ``_prefetched`` when the value is there.
READ_AHEAD = {PREFETCHED: True}


@strawberry.type(description="An AI-agent session: one agent run and what it recorded.")
class Session(Node):
    id: strawberry.ID = column(
        "Session id (a UUID): also its global id, which `node` refetches it by."
    )
    workflow_id: str | None = column("Id of the workflow that ran it.")
    execution_id: str | None = column("Workflow execution id.")
    phase_id: str | None = column("Phase id: a slug or a UUID.")
    milestone_id: str | None = column("Milestone id.")
    status: SessionStatus = column("Where the session is in its life.", decode=_status)
    agent_provider: str | None = column("Agent provider: claude, openai, mock, unknown, ...")
    agent_model: str | None = column("Model, e.g. claude-sonnet-4-6.")
    repos: list[str] = column("Repositories worked on, owner/repo.", decode=_repos)
    workspace_path: str | None = column("Workspace directory.")
    input_tokens: int = column("Input tokens.", decode=saturated_int)
    output_tokens: int = column("Output tokens.", decode=saturated_int)
    cache_creation_tokens: int = column("Tokens written to the cache.", decode=saturated_int)
    cache_read_tokens: int = column("Tokens read from the cache.", decode=saturated_int)
    total_tokens: int = column("All tokens.", decode=saturated_int)
    total_cost_usd: Decimal = column("Total cost in US dollars.")
    started_at: datetime | None = column("When it started.")
    completed_at: datetime | None = column("When it finished.")
    duration_seconds: float | None = column("Run time in seconds.")
    error_message: str | None = column("Why it failed, when it did.")
    metadata: JSON = column("Free-form metadata (a JSON object).", decode=as_object)
    operation_count: int = column("Number of operations the session recorded.")
    tool_call_count: int = column(
        "Its tool calls: operations of type tool_execution_completed, tool_execution_failed "
        "or tool_blocked."
    )
    failed_operation_count: int = column("Its operations with success = false.")
    subagent_count: int = column("Its operations of type subagent_started.")
    commit_count: int = column(
        "Its operations of type git_commit (git_operation entries are not counted)."
    )
    updated_at: datetime = column(
        "When a stored value of the session last changed (started, operations recorded, "
        "completed, imported with changes), by the database's clock."
    )
    _cost_by_model: strawberry.Private[dict[str, Any]]
    #: Values read for a whole page (``prefetch``): of READ_AHEAD fields by Python name,
    #: of PREFETCHED_BY_PLAN fields by their ``FieldPlan``.
    _prefetched: strawberry.Private[dict[Any, Any]] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_row(cls, row: RowMapping) -> Self:
        return cls(
            id=row["id"],
            workflow_id=row["workflow_id"],
            execution_id=row["execution_id"],
            phase_id=row["phase_id"],
            milestone_id=row["milestone_id"],
            status=_status(row["status"]),
            agent_provider=row["agent_provider"],
            agent_model=row["agent_model"],
            repos=_repos(row["repos"]),
            workspace_path=row["workspace_path"],
            input_tokens=saturated_int(row["input_tokens"]),
            output_tokens=saturated_int(row["output_tokens"]),
            cache_creation_tokens=saturated_int(row["cache_creation_tokens"]),
            cache_read_tokens=saturated_int(row["cache_read_tokens"]),
            total_tokens=saturated_int(row["total_tokens"]),
            total_cost_usd=row["total_cost_usd"],
            started_at=row["started_at"],
            completed_at=row["completed_at"],
            duration_seconds=row["duration_seconds"],
            error_message=row["error_message"],
            # A page reads its JSON documents only when a field needs them.
            metadata=as_object(row.get("metadata")),  # type: ignore[arg-type]
            operation_count=row["operation_count"],
            tool_call_count=row["tool_call_count"],
            failed_operation_count=row["failed_operation_count"],
            subagent_count=row["subagent_count"],
            commit_count=row["commit_count"],
            updated_at=row["updated_at"],
            _cost_by_model=as_object(row.get("cost_by_model")),
        )

    @strawberry.field(
        description="Name of the workflow, looked up from the workflow table.",
        metadata=READ_AHEAD | cell(_as_read, "read_ahead_workflow_name"),
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

    @strawberry.field(
        description="Phase for display: `research_phase` → Research Phase.",
        metadata=cell(display.format_phase, "phase_id"),
    )
    def phase_display(self) -> str | None:
        return display.format_phase(self.phase_id)

    @strawberry.field(
        description="Model for display: claude-sonnet-4-6 → Sonnet 4.6.",
        metadata=cell(display.format_model_compact, "agent_model"),
    )
    def agent_model_display(self) -> str | None:
        return display.format_model_compact(self.agent_model)

    @strawberry.field(
        description="Repositories for display: `foo +1`.",
        metadata=cell(_repos_display, "repos"),
    )
    def repos_display(self) -> str | None:
        return display.format_repos(self.repos)

    @strawberry.field(
        description="Input tokens for display: 1.2k.",
        metadata=cell(_tokens_display, "input_tokens"),
    )
    def input_tokens_display(self) -> str:
        return _tokens_display(self.input_tokens)

    @strawberry.field(
        description="Output tokens for display.",
        metadata=cell(_tokens_display, "output_tokens"),
    )
    def output_tokens_display(self) -> str:
        return _tokens_display(self.output_tokens)

    @strawberry.field(
        description="Cache-creation tokens for display.",
        metadata=cell(_tokens_display, "cache_creation_tokens"),
    )
    def cache_creation_tokens_display(self) -> str:
        return _tokens_display(self.cache_creation_tokens)

    @strawberry.field(
        description="Cache-read tokens for display.",
        metadata=cell(_tokens_display, "cache_read_tokens"),
    )
    def cache_read_tokens_display(self) -> str:
        return _tokens_display(self.cache_read_tokens)

    @strawberry.field(
        description="All tokens for display.",
        metadata=cell(_tokens_display, "total_tokens"),
    )
    def total_tokens_display(self) -> str:
        return _tokens_display(self.total_tokens)

    @strawberry.field(
        description="Total cost for display: $1.23, <$0.01, $1.2k.",
        metadata=cell(display.format_cost, "total_cost_usd"),
    )
    def total_cost_display(self) -> str:
        return display.format_cost(self.total_cost_usd)

    @strawberry.field(
        description="Duration for display: 2m 14s, 1h 2m, — when unknown.",
        metadata=cell(display.format_duration_seconds, "duration_seconds"),
    )
    def duration_display(self) -> str:
        return display.format_duration_seconds(self.duration_seconds)

    @strawberry.field(
        description="cacheReadTokens / (inputTokens + cacheReadTokens + cacheCreationTokens); "
        "null when that is 0.",
        metadata=cell(
            _cache_hit_ratio, "cache_read_tokens", "input_tokens", "cache_creation_tokens"
        ),
    )
    def cache_hit_ratio(self) -> float | None:
        return _cache_hit_ratio(
            self.cache_read_tokens, self.input_tokens, self.cache_creation_tokens
        )

    @strawberry.field(description="Cost per model, most expensive first.")
    def cost_by_model(self) -> list[ModelCost]:
        costs = []
        for model, raw in self._cost_by_model.items():
            try:
                costs.append(ModelCost(model=model, cost_usd=parse_decimal(raw)))
            except BadUserInput:
                continue  # an unreadable stored figure is left out, not fatal
        return sorted(costs, key=lambda c: (-c.cost_usd, c.model))

    @strawberry.field(
        description="Its tools by tool calls, most calls first, then by name. Batch-loaded "
        "for every session in the response at once.",
        metadata={PREFETCHED_BY_PLAN: True},
    )
    async def tool_usage(
        self,
        info: Info,
        first: Annotated[
            int | None, strawberry.argument(description="How many tools, 1..100.")
        ] = DEFAULT_TOOL_USAGE,
    ) -> list[ToolUsage]:
        field = field_plan(info)
        if field is not None and field in self._prefetched:
            return self._prefetched[field]  # type: ignore[no-any-return]
        limit = check_first(first, default=DEFAULT_TOOL_USAGE, maximum=MAX_TOOL_USAGE)
        rows = await info.context.loaders.tool_usage_by_session.load((self.id, limit))
        return [ToolUsage.from_row(row) for row in rows]

    @strawberry.field(
        description="Oldest first. Batch-loaded for every session in the response at once.",
        metadata={PREFETCHED_BY_PLAN: True},
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
        field = field_plan(info)
        if field is not None and field in self._prefetched:
            return self._prefetched[field]  # type: ignore[no-any-return]
        request = OperationPageRequest.of(
            info.context.cursors,
            first=first,
            after=given(after),
            types=given(types),
            tool_name=given(tool_name),
            success=given(success),
        )
        rows = await info.context.loaders.operation_page_by_session.load(
            OperationPageKey(
                self.id, request.filters, request.keyset, request.limit + 1, columns_of(field)
            )
        )
        return request.connection(self, rows)


@dataclasses.dataclass(frozen=True, slots=True)
class OperationPageRequest:
    """What a session's ``operations`` arguments ask for, checked."""

    codec: CursorCodec
    limit: int
    after_given: bool
    keyset: Keyset | None
    filters: OperationFilter

    @classmethod
    def of(
        cls,
        codec: CursorCodec,
        *,
        first: int | None,
        after: str | None,
        types: list[str] | None,
        tool_name: str | None,
        success: bool | None,
    ) -> OperationPageRequest:
        """Raises ``BadUserInput`` for a page size out of bounds or a bad cursor."""
        limit = check_first(first, default=100, maximum=MAX_OPERATIONS_PAGE)
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
        return cls(codec, limit, after is not None, keyset, filters)

    def connection(
        self, session: Session, rows: Sequence[Row[Any]], *, json: str | None = None
    ) -> OperationConnection:
        """The page of ``rows`` (of ``session``) read with one more than ``limit``; or, with
        ``json``, a page of which only ``nodes`` is selected, as the database wrote it
        (no rows)."""
        page = Page.of(
            rows,
            limit=self.limit,
            after_given=self.after_given,
            codec=self.codec,
            scope=OPERATIONS_SCOPE,
            column="timestamp",
        )
        return OperationConnection(
            page_info=page.info,
            _rows=page.rows,
            _session_id=session.id,
            _filters=self.filters,
            _cursors=page.cursors,
            _json=json,
            _total=session.operation_count if self.filters == _UNFILTERED else None,
        )


@strawberry.type(description="A session and its cursor.")
class SessionEdge:
    cursor: str = strawberry.field(description="Pass as `after` to continue after this one.")
    node: Session = strawberry.field(description="The session.")


def _page_sessions(self: SessionConnection) -> list[Session]:
    return self.sessions()


@strawberry.type(description="A page of sessions.")
class SessionConnection(Connection):
    nodes: list[Session] = strawberry.field(
        resolver=_page_sessions,
        description="The sessions of this page.",
        metadata={ROWS: "_rows"},
    )
    page_info: PageInfo = strawberry.field(description="Where this page is.")
    #: The page's rows, one per session, with what the statement read along.
    _rows: strawberry.Private[Sequence[Row[Any]]]
    _read_ahead: strawberry.Private[ReadAhead]
    _filters: strawberry.Private[SessionCriteria]
    _cursors: strawberry.Private[PageCursors]
    #: ``totalCount`` when the page's statement counted it (``ReadAhead.total``).
    _total: strawberry.Private[int | None] = None
    _built: strawberry.Private[list[Session] | None] = None

    def sessions(self) -> list[Session]:
        """The page's sessions, built from its rows once, with what was read along."""
        if self._built is None:
            mappings = [row._mapping for row in self._rows]
            self._built = [Session.from_row(row) for row in mappings]
            read_along(self._built, mappings, self._read_ahead)
        return self._built

    @strawberry.field(description="The sessions of this page with their cursors.")
    def edges(self) -> list[SessionEdge]:
        return [
            SessionEdge(cursor=cursor, node=node)
            for cursor, node in zip(self._cursors.all(), self.sessions(), strict=True)
        ]

    @strawberry.field(
        description="All sessions matching the filters, not the page length. "
        "Counted only when selected."
    )
    async def total_count(self, info: Info) -> int:
        if self._total is not None:
            return self._total
        return await queries.count_sessions(engine=info.context.engine, filters=self._filters)


def read_ahead_fields(field: FieldPlan | None) -> set[str]:
    """The READ_AHEAD fields selected on the sessions under this field, by Python name;
    all of them when the plan does not know the field."""
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


def page_read_ahead(field: FieldPlan | None) -> ReadAhead:
    """What the statement of the page of sessions under this field (``sessions``) reads
    along with its rows: the READ_AHEAD fields selected, and ``totalCount``."""
    if field is None:
        return ReadAhead()
    found: ReadAhead | None = field.memo.get("page_read_ahead")
    if found is None:
        wanted = read_ahead_fields(field)
        selected = {python_name(f) for f in selected_on(field, "Session")}
        found = field.memo["page_read_ahead"] = ReadAhead(
            documents=bool(selected & {"metadata", "cost_by_model"}),
            workflow=bool(wanted & {"workflow_name", "workflow"}),
            total=any(
                selected.name == "totalCount"
                for selection in field.selections.values()
                for selected in selection.fields
            ),
        )
    return found


def read_along(sessions: list[Session], rows: Sequence[RowMapping], read: ReadAhead) -> None:
    """Keep what the page's statement read along (``ReadAhead``) with each session, as
    ``prefetch`` would have read it."""
    for session, row in zip(sessions, rows, strict=True):
        if read.workflow:
            found = row["read_ahead_workflow_id"]
            workflow = (
                None if found is None else Workflow(id=found, name=row["read_ahead_workflow_name"])
            )
            session._prefetched["workflow"] = workflow
            session._prefetched["workflow_name"] = workflow.name if workflow else None


def _pages_read_ahead(field: FieldPlan) -> list[FieldPlan]:
    """The fields with arguments read ahead (``operations``, ``toolUsage``) selected on
    the sessions under this field."""
    pages: list[FieldPlan] | None = field.memo.get("pages_read_ahead")
    if pages is None:
        pages = field.memo["pages_read_ahead"] = [
            selected
            for selected in selected_on(field, "Session")
            if selected.metadata.get(PREFETCHED_BY_PLAN)
        ]
    return pages


_READ_AHEAD_NAMES = frozenset(
    f.python_name
    for f in Session.__strawberry_definition__.fields  # type: ignore[attr-defined]
    if f.metadata.get(PREFETCHED)
)


def prefetches(field: FieldPlan | None) -> bool:
    """Whether a page of sessions under this field (``sessions``) has more to read than
    its statement reads along: operation pages, tool usage (or everything, for an
    unknown field).
    If not, its sessions are built only if a field needs the objects."""
    return field is None or bool(_pages_read_ahead(field))


async def prefetch(info: Info, sessions: list[Session]) -> None:
    """Read the READ_AHEAD fields, the operation pages and tool usage selected under this
    field for every session of a page in one go, so each session answers them from
    memory: the same statements as field by field, without one coroutine per session
    and field."""
    if not sessions:
        return
    field = field_plan(info)
    wanted = read_ahead_fields(field) - sessions[0]._prefetched.keys()
    pages = _pages_read_ahead(field) if field is not None else []
    if not wanted and not pages:
        return
    loaders = info.context.loaders
    wants_workflow = bool(wanted & {"workflow_name", "workflow"})
    ids = sorted({s.workflow_id for s in sessions if s.workflow_id is not None})
    variables = variables_of(info)
    workflows, _ = await asyncio.gather(
        loaders.workflow_by_id.load_many(ids if wants_workflow else []),
        asyncio.gather(
            *(
                _BY_PLAN_READERS[python_name(page) or ""](info, page, variables, sessions)
                for page in pages
            )
        ),
    )
    if wants_workflow:
        rows = {row["id"]: row for row in workflows if row is not None}
        for session in sessions:
            row = rows.get(session.workflow_id) if session.workflow_id is not None else None
            workflow = Workflow.from_row(row)
            session._prefetched["workflow"] = workflow
            session._prefetched["workflow_name"] = workflow.name if workflow else None


async def _read_pages(
    info: Info, field: FieldPlan, variables: Mapping[str, Any], sessions: list[Session]
) -> None:
    """The page ``field`` (a session's ``operations``) asks for, read for every session in
    one statement. Arguments the field would refuse are left to its resolver, which
    reports them at each session's path."""

    def argument(name: str) -> Any:
        value = field.argument(name, variables)
        return None if value is Undefined else value

    try:
        request = OperationPageRequest.of(
            info.context.cursors,
            first=argument("first"),
            after=argument("after"),
            types=argument("types"),
            tool_name=argument("toolName"),
            success=argument("success"),
        )
    except BadUserInput:
        return
    context = info.context
    fields = json_page_fields(field) if context.compiled else None
    if (
        fields is not None
        and context.engine.dialect.name == "postgresql"
        and queries.json_columns_fit(fields)
    ):
        built = await queries.fetch_operation_pages_json(
            engine=context.engine,
            session_ids=[s.id for s in sessions],
            filters=request.filters,
            after=request.keyset,
            limit=request.limit,
            fields=fields,
        )
        if built is not None:
            for session in sessions:
                nodes = built.get(session.id, "[]")
                session._prefetched[field] = request.connection(session, [], json=nodes)
            return
    found = await queries.fetch_operation_pages(
        engine=info.context.engine,
        session_ids=[s.id for s in sessions],
        filters=request.filters,
        after=request.keyset,
        limit=request.limit + 1,
        columns=columns_of(field),
    )
    for session in sessions:
        session._prefetched[field] = request.connection(session, found.get(session.id, []))


async def _read_tool_usage(
    info: Info, field: FieldPlan, variables: Mapping[str, Any], sessions: list[Session]
) -> None:
    """The tool usage ``field`` (a session's ``toolUsage``) asks for, read for every session
    in one statement; a ``first`` the field would refuse is left to its resolver."""
    first = field.argument("first", variables)
    try:
        limit = check_first(
            None if first is Undefined else first,
            default=DEFAULT_TOOL_USAGE,
            maximum=MAX_TOOL_USAGE,
        )
    except BadUserInput:
        return
    found = await queries.fetch_tool_usage(
        engine=info.context.engine, session_ids=[s.id for s in sessions], first=limit
    )
    for session in sessions:
        session._prefetched[field] = [ToolUsage.from_row(row) for row in found.get(session.id, [])]


#: Per Python name of a field read ahead with its arguments (PREFETCHED_BY_PLAN), what
#: reads it for a page of sessions.
_BY_PLAN_READERS = {"operations": _read_pages, "tool_usage": _read_tool_usage}
