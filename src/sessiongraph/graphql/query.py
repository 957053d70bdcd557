"""The Query root: sessions listed and looked up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import strawberry
from strawberry import UNSET

from sessiongraph.db import queries, stats
from sessiongraph.errors import AmbiguousId, BadUserInput
from sessiongraph.graphql.arguments import check_first, given
from sessiongraph.graphql.context import Info
from sessiongraph.graphql.fields import SIZE, field_plan
from sessiongraph.graphql.filters import (
    FilterArgument,
    StartedAfterArgument,
    StartedBeforeArgument,
    StatusArgument,
    StatusesArgument,
    WorkflowIdArgument,
    session_criteria,
)
from sessiongraph.graphql.nodes import MAX_NODES, load_nodes
from sessiongraph.graphql.ordering import SessionOrder
from sessiongraph.graphql.session_filter import SessionFilter
from sessiongraph.graphql.types.node import Node
from sessiongraph.graphql.types.pagination import Page
from sessiongraph.graphql.types.session import (
    Session,
    SessionConnection,
    page_read_ahead,
    prefetch,
    prefetches,
)
from sessiongraph.graphql.types.stats import SessionStats

#: ``sessionStats``'s one argument.
StatsFilterArgument = Annotated[
    SessionFilter | None,
    strawberry.argument(description="Only the sessions matching it; all of them when absent."),
]

MAX_SESSIONS_PAGE = 200
MAX_ID_LENGTH = 128


def _ids_given(argument: Callable[[str], Any]) -> int:
    """How many objects ``nodes`` can return: one per id (for the cost)."""
    ids = argument("ids")
    return len(ids) if isinstance(ids, list) else 0


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
        filter: FilterArgument = UNSET,
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
        filters = session_criteria(
            workflow_id=workflow_id,
            status=status,
            statuses=statuses,
            started_after=started_after,
            started_before=started_before,
            filter=filter,
        )
        after = given(after)
        order = given(order_by) or SessionOrder()
        ordering = order.ordering()
        codec = info.context.cursors
        keyset = (
            codec.decode(after, scope=order.scope, value_kind=order.value_kind, id_type=str)
            if after is not None
            else None
        )
        plan = field_plan(info)
        read_ahead = page_read_ahead(plan)
        rows = await queries.fetch_session_page(
            engine=info.context.engine,
            filters=filters,
            ordering=ordering,
            after=keyset,
            limit=limit + 1,
            read_ahead=read_ahead,
        )
        page = Page.of(
            rows,
            limit=limit,
            after_given=after is not None,
            codec=codec,
            scope=order.scope,
            column=ordering.column,
        )
        total = rows[0]._mapping["read_ahead_total"] if read_ahead.total and rows else None
        connection = SessionConnection(
            page_info=page.info,
            _rows=page.rows,
            _read_ahead=read_ahead,
            _filters=filters,
            _cursors=page.cursors,
            _total=total,
        )
        if prefetches(plan):
            await prefetch(info, connection.sessions())
        return connection

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
            await prefetch(info, [session])
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

    @strawberry.field(
        description="The object with this global id (a session's id, an operation's `id`); "
        "null when nothing has it. Exact ids only: no prefix lookup."
    )
    async def node(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="A global id.")],
    ) -> Node | None:
        [found] = await load_nodes(info, [id])
        return found

    @strawberry.field(
        description=f"The objects with these global ids, in their order, null where nothing "
        f"has one; at most {MAX_NODES} ids. Read in one go whatever their number.",
        metadata={SIZE: _ids_given},
    )
    async def nodes(
        self,
        info: Info,
        ids: Annotated[
            list[strawberry.ID],
            strawberry.argument(description=f"Global ids, 0..{MAX_NODES}; repeats allowed."),
        ],
    ) -> list[Node | None]:
        if len(ids) > MAX_NODES:
            raise BadUserInput(
                f"`ids` holds {len(ids)} ids; at most {MAX_NODES} are looked up at once",
                argumentName="ids",
            )
        return await load_nodes(info, ids)

    @strawberry.field(
        description="Aggregates over every session matching the filter (all of them when "
        "absent). Nullable: one failing dashboard panel never nulls the others."
    )
    def session_stats(self, info: Info, filter: StatsFilterArgument = UNSET) -> SessionStats | None:
        criteria = session_criteria(filter=filter)
        return SessionStats.of(info, stats.Scope.of(criteria, info.context.engine.dialect.name))
