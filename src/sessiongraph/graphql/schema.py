"""The Query root and the schema."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from enum import Enum
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from strawberry import UNSET
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import DEFAULT_ALLOWED_OPERATION_TYPES
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from sessiongraph.db import queries
from sessiongraph.db.queries import SessionOrdering
from sessiongraph.errors import AmbiguousId, BadUserInput
from sessiongraph.graphql.compat import execution_context_class
from sessiongraph.graphql.context import Info
from sessiongraph.graphql.cursors import PageCursors, ValueKind
from sessiongraph.graphql.documents import DocumentCache
from sessiongraph.graphql.errors import ErrorShapes, is_unexpected
from sessiongraph.graphql.filters import (
    StartedAfterArgument,
    StartedBeforeArgument,
    StatusArgument,
    StatusesArgument,
    WorkflowIdArgument,
    session_filter,
)
from sessiongraph.graphql.limits import RequestLimits
from sessiongraph.graphql.mutations import Mutation
from sessiongraph.graphql.scalars import SCALAR_MAP
from sessiongraph.graphql.selection import field_names, node_field_names
from sessiongraph.graphql.subscriptions import Subscription
from sessiongraph.graphql.types import (
    PageInfo,
    Session,
    SessionConnection,
    check_first,
    given,
    prefetch,
)

logger = logging.getLogger("sessiongraph.graphql")

MAX_SESSIONS_PAGE = 200
MAX_ID_LENGTH = 128


@strawberry.enum(description="Sort direction.")
class OrderDirection(Enum):
    ASC = strawberry.enum_value("asc", description="Smallest first.")
    DESC = strawberry.enum_value("desc", description="Largest first.")


@strawberry.enum(description="What sessions can be sorted by. Sessions without a value come last.")
class SessionOrderField(Enum):
    STARTED_AT = strawberry.enum_value("started_at", description="Start time.")
    COMPLETED_AT = strawberry.enum_value("completed_at", description="Completion time.")
    TOTAL_COST_USD = strawberry.enum_value("total_cost_usd", description="Total cost.")
    TOTAL_TOKENS = strawberry.enum_value("total_tokens", description="All tokens.")
    DURATION_SECONDS = strawberry.enum_value("duration_seconds", description="Run time.")


_VALUE_KINDS = {
    SessionOrderField.STARTED_AT: ValueKind.DATETIME,
    SessionOrderField.COMPLETED_AT: ValueKind.DATETIME,
    SessionOrderField.TOTAL_COST_USD: ValueKind.DECIMAL,
    SessionOrderField.TOTAL_TOKENS: ValueKind.INT,
    SessionOrderField.DURATION_SECONDS: ValueKind.FLOAT,
}


@strawberry.input(description="How to sort sessions; ties are broken by id.")
class SessionOrder:
    field: SessionOrderField = strawberry.field(
        default=SessionOrderField.STARTED_AT, description="The value to sort by."
    )
    direction: OrderDirection = strawberry.field(
        default=OrderDirection.DESC, description="Sort direction."
    )


@strawberry.type(description="Read sessions, their operations and git facts.")
class Query:
    @strawberry.field(
        description="List sessions, newest first by default. Same filters as GET /sessions."
    )
    async def sessions(
        self,
        info: Info,
        workflow_id: WorkflowIdArgument = UNSET,
        status: StatusArgument = UNSET,
        statuses: StatusesArgument = UNSET,
        started_after: StartedAfterArgument = UNSET,
        started_before: StartedBeforeArgument = UNSET,
        first: Annotated[
            int | None, strawberry.argument(description="Page size, 1..200 (REST `limit`).")
        ] = 50,
        after: Annotated[
            str | None,
            strawberry.argument(description="Opaque cursor from pageInfo.endCursor."),
        ] = UNSET,
        order_by: Annotated[
            SessionOrder | None,
            strawberry.argument(description="Sort order; newest started first by default."),
        ] = UNSET,
    ) -> SessionConnection:
        limit = check_first(first, default=50, maximum=MAX_SESSIONS_PAGE)
        filters = session_filter(
            workflow_id=workflow_id,
            status=status,
            statuses=statuses,
            started_after=started_after,
            started_before=started_before,
        )
        after = given(after)
        order = given(order_by) or SessionOrder()
        ordering = SessionOrdering(
            column=order.field.name.lower(), descending=order.direction is OrderDirection.DESC
        )
        scope = f"sessions:{order.field.name}:{order.direction.name}"
        cursors = info.context.cursors
        keyset = (
            cursors.decode(after, scope=scope, value_kind=_VALUE_KINDS[order.field], id_type=str)
            if after is not None
            else None
        )
        rows = await queries.fetch_session_page(
            engine=info.context.engine,
            filters=filters,
            ordering=ordering,
            after=keyset,
            limit=limit + 1,
        )
        page = rows[:limit]
        nodes = [Session.from_row(row) for row in page]
        raw = info._raw_info
        await prefetch(info, nodes, node_field_names(raw.field_nodes, raw.fragments))
        positions = PageCursors(cursors, scope, ordering.column, page)
        return SessionConnection(
            nodes=nodes,
            page_info=PageInfo(
                has_next_page=len(rows) > limit,
                has_previous_page=after is not None,
                _cursors=positions,
            ),
            _filters=filters,
            _cursors=positions,
        )

    @strawberry.field(
        description="One session by full id or unique id prefix; null when nothing matches. "
        "A prefix that matches several sessions is an AMBIGUOUS_ID error listing them."
    )
    async def session(
        self,
        info: Info,
        id: Annotated[
            str, strawberry.argument(description="Full session id or a unique prefix of it.")
        ],
    ) -> Session | None:
        wanted = id.strip()
        if not wanted:
            raise BadUserInput("`id` must not be empty", argumentName="id")
        if "\x00" in wanted or not wanted.isprintable():
            raise BadUserInput("`id` contains characters no id has", argumentName="id")
        if len(wanted) > MAX_ID_LENGTH:
            return None
        rows = await queries.find_sessions_by_id_or_prefix(
            engine=info.context.engine, id_or_prefix=wanted
        )
        if len(rows) == 1:
            session = Session.from_row(rows[0])
            raw = info._raw_info
            await prefetch(info, [session], field_names(raw.field_nodes, raw.fragments))
            return session
        if not rows:
            return None
        shown = rows[: queries.PREFIX_CANDIDATES]
        more = " or more" if len(rows) > len(shown) else ""
        raise AmbiguousId(
            f"Session id prefix {wanted!r} is ambiguous: it matches {len(shown)}{more} "
            "sessions. Use a longer prefix.",
            candidates=[row["id"][:12] for row in shown],
        )


class Schema(strawberry.Schema):
    """Logs only unexpected errors (a client's mistake is not the server's), and runs
    subscriptions over WebSocket only."""

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        # Run as a single HTTP request, a subscription's stream of events has nowhere
        # to go: refuse it (HTTP 400) and keep subscriptions to the WebSocket.
        allowed = set(allowed_operation_types or DEFAULT_ALLOWED_OPERATION_TYPES)
        return await super().execute(
            query,
            variable_values=variable_values,
            context_value=context_value,
            root_value=root_value,
            operation_name=operation_name,
            allowed_operation_types=allowed - {OperationType.SUBSCRIPTION},
            operation_extensions=operation_extensions,
        )

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            if is_unexpected(error):
                logger.error(
                    "unexpected error at %s", error.path, exc_info=error.original_error or error
                )


schema = Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    extensions=[RequestLimits, DocumentCache, ErrorShapes],
    # The compiled path, unless a library internal it relies on is missing (compat.py).
    execution_context_class=execution_context_class(),
    # Whether batches are accepted, and how big, is the request guard's to decide.
    config=StrawberryConfig(scalar_map=SCALAR_MAP, batching_config={"max_operations": 10_000}),
)
