"""The Mutation root: sessions and their operations written in as they happen."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, TypeVar

import strawberry
from strawberry import UNSET

from sessiongraph.db import outages, queries, writes
from sessiongraph.db.errors import (
    CompletedBeforeStart,
    Conflict,
    OperationIdTaken,
    SessionFinished,
    SessionNotFound,
    TotalTokensTooLarge,
)
from sessiongraph.db.writes import TERMINAL_STATUSES, Announce, Completion
from sessiongraph.errors import BadUserInput, WriteConflict
from sessiongraph.events import Event
from sessiongraph.graphql import time_limit
from sessiongraph.graphql.arguments import given
from sessiongraph.graphql.context import Info
from sessiongraph.graphql.scalars import JSON
from sessiongraph.graphql.types.operation import Operation, operation_columns, operation_list
from sessiongraph.graphql.types.session import Session, SessionStatus
from sessiongraph.inputs import (
    check_count,
    check_id,
    check_json,
    check_money,
    check_seconds,
    check_session_id,
    check_text,
    check_tool_name,
)
from sessiongraph.stored import tool_input_object

T = TypeVar("T")

#: Operations one recordOperations call may carry.
MAX_OPERATIONS_PER_CALL = 1000


@strawberry.input(description="A session that starts now (or is about to).")
class StartSessionInput:
    id: str | None = strawberry.field(
        default=UNSET, description="Session id; a random UUID is generated when absent."
    )
    workflow_id: str | None = strawberry.field(
        default=UNSET, description="Workflow that runs it; created when new."
    )
    workflow_name: str | None = strawberry.field(
        default=UNSET, description="Name of the workflow; sets or renames it."
    )
    execution_id: str | None = strawberry.field(default=UNSET, description="Execution id.")
    phase_id: str | None = strawberry.field(default=UNSET, description="Phase: slug or UUID.")
    milestone_id: str | None = strawberry.field(default=UNSET, description="Milestone id.")
    status: SessionStatus = strawberry.field(
        default=SessionStatus.RUNNING, description="PENDING or RUNNING."
    )
    agent_provider: str | None = strawberry.field(default=UNSET, description="claude, openai…")
    agent_model: str | None = strawberry.field(default=UNSET, description="Model name.")
    repos: list[str] | None = strawberry.field(default=UNSET, description="owner/repo list.")
    workspace_path: str | None = strawberry.field(default=UNSET, description="Workspace.")
    started_at: datetime | None = strawberry.field(
        default=UNSET, description="Start time; now for a RUNNING session when absent."
    )
    metadata: JSON | None = strawberry.field(
        default=UNSET, description="Free-form metadata (a JSON object)."
    )


@strawberry.input(description="One operation a session recorded.")
class OperationInput:
    operation_id: str = strawberry.field(
        description="Unique id; sending the same id again stores nothing new."
    )
    operation_type: str = strawberry.field(description="e.g. tool_execution_started.")
    timestamp: datetime | None = strawberry.field(default=UNSET, description="When.")
    duration_seconds: float | None = strawberry.field(default=UNSET, description="Seconds.")
    success: bool = strawberry.field(default=True, description="False when it failed.")
    input_tokens: int | None = strawberry.field(default=UNSET, description="Input tokens.")
    output_tokens: int | None = strawberry.field(default=UNSET, description="Output tokens.")
    total_tokens: int | None = strawberry.field(default=UNSET, description="Total tokens.")
    tool_name: str | None = strawberry.field(default=UNSET, description="Tool name.")
    tool_use_id: str | None = strawberry.field(default=UNSET, description="Pairs a tool call.")
    tool_input: JSON | None = strawberry.field(
        default=UNSET, description='Tool input; a value that is not an object is kept as {"raw"}.'
    )
    tool_output: str | None = strawberry.field(default=UNSET, description="Tool output.")
    message_role: str | None = strawberry.field(default=UNSET, description="user, assistant.")
    message_content: str | None = strawberry.field(default=UNSET, description="Message text.")
    thinking_content: str | None = strawberry.field(default=UNSET, description="Thinking.")
    git: JSON | None = strawberry.field(
        default=UNSET, description="Git facts: a JSON object with GitInfo's keys (snake_case)."
    )


@strawberry.input(description="The cost one model accounts for.")
class ModelCostInput:
    model: str = strawberry.field(description="Model name.")
    cost_usd: Decimal = strawberry.field(description="Cost in US dollars.")


@strawberry.type(description="What a recordOperations call did.")
class RecordOperationsResult:
    operations: list[Operation] = operation_list(
        "Every operation of the call as stored, in the order sent."
    )
    recorded_operation_ids: list[str] = strawberry.field(
        description="Operations stored by this call."
    )
    already_present_operation_ids: list[str] = strawberry.field(
        description="Operations that were stored before; left as they were."
    )


def _operation_row(
    session_id: str, op: OperationInput, index: int, *, max_json_depth: int
) -> dict[str, Any]:
    at = f"operations[{index}]"
    if not op.operation_type.strip():
        raise BadUserInput(f"`{at}.operationType` must not be empty", field=f"{at}.operationType")
    git = check_json(given(op.git), f"{at}.git", max_depth=max_json_depth)
    if git is not None and not isinstance(git, dict):
        raise BadUserInput(f"`{at}.git` must be a JSON object", field=f"{at}.git")

    def text(name: str, value: str | None) -> str | None:
        return check_text(given(value), f"{at}.{name}")

    return {
        "operation_id": check_id(op.operation_id, f"{at}.operationId"),
        "session_id": session_id,
        "operation_type": text("operationType", op.operation_type),
        "timestamp": given(op.timestamp),
        "duration_seconds": check_seconds(given(op.duration_seconds), f"{at}.durationSeconds"),
        "success": op.success,
        "input_tokens": check_count(given(op.input_tokens), f"{at}.inputTokens"),
        "output_tokens": check_count(given(op.output_tokens), f"{at}.outputTokens"),
        "total_tokens": check_count(given(op.total_tokens), f"{at}.totalTokens"),
        "tool_name": check_tool_name(given(op.tool_name), f"{at}.toolName"),
        "tool_use_id": text("toolUseId", op.tool_use_id),
        "tool_input": tool_input_object(
            check_json(given(op.tool_input), f"{at}.toolInput", max_depth=max_json_depth)
        ),
        "tool_output": text("toolOutput", op.tool_output),
        "message_role": text("messageRole", op.message_role),
        "message_content": text("messageContent", op.message_content),
        "thinking_content": text("thinkingContent", op.thinking_content),
        "git": git,
    }


async def _write(info: Info, write: Callable[[Announce], Awaitable[T]]) -> T:
    """Run ``write``, announcing its event, and tell this process's subscribers once it
    has committed. It runs to the end even if the request is cancelled meanwhile: a
    committed write is always announced."""
    events = info.context.events
    time_limit.write_begins()

    async def run() -> T:
        with outages.reported(writing=True):
            result = await write(events.announce)
        event = result if isinstance(result, Event) else getattr(result, "event", None)
        if event is not None:
            events.committed(event)
        return result

    return await queries.uncancellable(run())


def _camel(column: str) -> str:
    head, *rest = column.split("_")
    return head + "".join(word.capitalize() for word in rest)


def _no_session(error: SessionNotFound, field: str) -> BadUserInput:
    return BadUserInput(f"No session with id {error.session_id!r}", field=field)


async def _session(info: Info, session_id: str) -> Session:
    row = await queries.fetch_session(engine=info.context.engine, session_id=session_id)
    assert row is not None  # just written, in a committed transaction
    return Session.from_row(row)


@strawberry.type(description="Write sessions and their operations.")
class Mutation:
    @strawberry.mutation(
        description="Start a session. Its workflow is created when new. Idempotent: an id "
        "that exists with the same input returns the stored session and changes nothing; "
        "with other values it is a CONFLICT."
    )
    async def start_session(
        self,
        info: Info,
        input: Annotated[StartSessionInput, strawberry.argument(description="The session.")],
    ) -> Session:
        if input.status not in (SessionStatus.PENDING, SessionStatus.RUNNING):
            raise BadUserInput(
                "A session starts PENDING or RUNNING; finish it with completeSession",
                field="input.status",
            )
        session_id = given(input.id)
        session_id = (
            check_session_id(session_id, "input.id")
            if session_id is not None
            else str(uuid.uuid4())
        )
        workflow_id = given(input.workflow_id)
        workflow_name = check_text(given(input.workflow_name), "input.workflowName")
        if workflow_id is not None:
            check_id(workflow_id, "input.workflowId")
        elif workflow_name is not None:
            raise BadUserInput(
                "`input.workflowName` names a workflow: give its `workflowId` too",
                field="input.workflowName",
            )
        metadata = check_json(
            given(input.metadata), "input.metadata", max_depth=info.context.settings.max_json_depth
        )
        if metadata is not None and not isinstance(metadata, dict):
            raise BadUserInput("`input.metadata` must be a JSON object", field="input.metadata")
        repos = given(input.repos) or []
        for index, repo in enumerate(repos):
            check_text(repo, f"input.repos[{index}]")

        def text(name: str) -> str | None:
            return check_text(given(getattr(input, name)), f"input.{_camel(name)}")

        started_at = given(input.started_at)
        # What the server fills in is not compared when this call is a retry.
        chosen = frozenset() if started_at is not None else frozenset({"started_at"})
        if started_at is None and input.status is SessionStatus.RUNNING:
            started_at = datetime.now(UTC)
        row: dict[str, Any] = {
            "id": session_id,
            "workflow_id": workflow_id,
            "execution_id": text("execution_id"),
            "phase_id": text("phase_id"),
            "milestone_id": text("milestone_id"),
            "status": input.status.name.lower(),
            "agent_provider": text("agent_provider"),
            "agent_model": text("agent_model"),
            "repos": repos,
            "workspace_path": text("workspace_path"),
            "started_at": started_at,
            "metadata": metadata or {},
        }
        engine = info.context.engine
        try:
            await _write(
                info,
                lambda announce: writes.start_session(
                    engine=engine,
                    row=row,
                    workflow_name=workflow_name,
                    announce=announce,
                    chosen=chosen,
                ),
            )
        except Conflict as error:
            differences = [f"input.{_camel(column)}" for column in error.differences]
            raise WriteConflict(
                f"A session with id {error.session_id!r} exists with other values "
                f"({', '.join(differences)}); nothing was changed",
                differences,
            ) from error
        return await _session(info, session_id)

    @strawberry.mutation(
        description="Record a batch of a session's operations, all or nothing. Idempotent: "
        f"an operationId already stored is reported, not stored twice. At most "
        f"{MAX_OPERATIONS_PER_CALL} per call."
    )
    async def record_operations(
        self,
        info: Info,
        session_id: Annotated[str, strawberry.argument(description="The session's full id.")],
        operations: Annotated[
            list[OperationInput], strawberry.argument(description="The operations, in order.")
        ],
    ) -> RecordOperationsResult:
        check_id(session_id, "sessionId")
        if not 1 <= len(operations) <= MAX_OPERATIONS_PER_CALL:
            raise BadUserInput(
                f"Send 1 to {MAX_OPERATIONS_PER_CALL} operations per call, got {len(operations)}",
                field="operations",
            )
        depth = info.context.settings.max_json_depth
        rows = [
            _operation_row(session_id, op, i, max_json_depth=depth)
            for i, op in enumerate(operations)
        ]
        seen: set[str] = set()
        for index, row in enumerate(rows):
            if row["operation_id"] in seen:
                raise BadUserInput(
                    f"Operation id {row['operation_id']!r} appears twice in this call",
                    field=f"operations[{index}].operationId",
                )
            seen.add(row["operation_id"])
        engine = info.context.engine
        try:
            recorded = await _write(
                info,
                lambda announce: writes.record_operations(
                    engine=engine, session_id=session_id, rows=rows, announce=announce
                ),
            )
        except SessionNotFound as error:
            raise _no_session(error, "sessionId") from error
        except SessionFinished as error:
            raise BadUserInput(
                f"Session {error.session_id!r} is {error.status}: it records no more operations",
                field="sessionId",
            ) from error
        except OperationIdTaken as error:
            raise BadUserInput(
                f"Operation id {error.operation_id!r} is already recorded for another session",
                field=f"operations[{error.index}].operationId",
            ) from error
        stored = await queries.fetch_operations_by_id(
            engine=info.context.engine,
            operation_ids=[row["operation_id"] for row in rows],
            columns=operation_columns(info),
        )
        return RecordOperationsResult(
            operations=Operation.from_rows([stored[row["operation_id"]] for row in rows]),
            recorded_operation_ids=recorded.new_ids,
            already_present_operation_ids=recorded.already_present,
        )

    @strawberry.mutation(
        description="Finish a session with its final figures. A finished session takes no "
        "more operations. Idempotent: completing it again with the same figures returns it "
        "unchanged; with other figures it is a CONFLICT that changes nothing."
    )
    async def complete_session(
        self,
        info: Info,
        id: Annotated[str, strawberry.argument(description="The session's full id.")],
        status: Annotated[
            SessionStatus, strawberry.argument(description="COMPLETED, FAILED or CANCELLED.")
        ],
        error_message: Annotated[
            str | None, strawberry.argument(description="Why it failed.")
        ] = UNSET,
        completed_at: Annotated[
            datetime | None, strawberry.argument(description="When it finished; now when absent.")
        ] = UNSET,
        input_tokens: Annotated[int | None, strawberry.argument(description="Final.")] = UNSET,
        output_tokens: Annotated[int | None, strawberry.argument(description="Final.")] = UNSET,
        cache_creation_tokens: Annotated[
            int | None, strawberry.argument(description="Final.")
        ] = UNSET,
        cache_read_tokens: Annotated[int | None, strawberry.argument(description="Final.")] = UNSET,
        total_tokens: Annotated[
            int | None,
            strawberry.argument(description="Final; the sum of the four counts when absent."),
        ] = UNSET,
        total_cost_usd: Annotated[
            Decimal | None, strawberry.argument(description="Final cost in US dollars.")
        ] = UNSET,
        cost_by_model: Annotated[
            list[ModelCostInput] | None, strawberry.argument(description="Cost per model.")
        ] = UNSET,
    ) -> Session:
        if status.name.lower() not in TERMINAL_STATUSES:
            raise BadUserInput(
                "A session completes as COMPLETED, FAILED or CANCELLED", field="status"
            )
        check_id(id, "id")
        costs = given(cost_by_model)
        if costs is not None:
            if len({c.model for c in costs}) != len(costs):
                raise BadUserInput("`costByModel` names a model twice", field="costByModel")
            for index, cost in enumerate(costs):
                check_tool_name(cost.model, f"costByModel[{index}].model")
                check_money(cost.cost_usd, f"costByModel[{index}].costUsd")
        completion = Completion(
            status=status.name.lower(),
            completed_at=given(completed_at),
            error_message=check_text(given(error_message), "errorMessage"),
            input_tokens=check_count(given(input_tokens), "inputTokens"),
            output_tokens=check_count(given(output_tokens), "outputTokens"),
            cache_creation_tokens=check_count(given(cache_creation_tokens), "cacheCreationTokens"),
            cache_read_tokens=check_count(given(cache_read_tokens), "cacheReadTokens"),
            total_tokens=check_count(given(total_tokens), "totalTokens"),
            total_cost_usd=check_money(given(total_cost_usd), "totalCostUsd"),
            cost_by_model=(
                {c.model: format(c.cost_usd, "f") for c in costs} if costs is not None else None
            ),
        )
        engine = info.context.engine
        try:
            await _write(
                info,
                lambda announce: writes.complete_session(
                    engine=engine, session_id=id, completion=completion, announce=announce
                ),
            )
        except SessionNotFound as error:
            raise _no_session(error, "id") from error
        except Conflict as error:
            differences = [_camel(column) for column in error.differences]
            raise WriteConflict(
                f"Session {error.session_id!r} is finished with other figures "
                f"({', '.join(differences)}); nothing was changed",
                differences,
            ) from error
        except TotalTokensTooLarge as error:
            raise BadUserInput(
                f"`totalTokens` is absent, and the sum of the session's token counts, "
                f"{error.total:,}, is more than an Int carries (2,147,483,647): give "
                "`totalTokens`, or smaller counts",
                field="totalTokens",
            ) from error
        except CompletedBeforeStart as error:
            raise BadUserInput(
                "`completedAt` is before the session started", field="completedAt"
            ) from error
        return await _session(info, id)
