"""Operation: one recorded event of a session, and a session's page of them.

Each field declares the column it reads (``column``, ``reads``): the projection
(``operation_columns``) and the row decoding (``Operation.from_rows``) both follow
these declarations, so a new field cannot be selected without being read.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Self

import strawberry
from sqlalchemy.engine import Row

from sessiongraph.db.queries import OperationFilter
from sessiongraph.graphql.context import Info
from sessiongraph.graphql.cursors import PageCursors
from sessiongraph.graphql.fields import (
    COLUMN,
    MAX_ITEMS,
    ROWS,
    Column,
    cell,
    column,
    field_plan,
    python_name,
    selected_on,
)
from sessiongraph.graphql.plan import FieldPlan
from sessiongraph.graphql.scalars import JSON
from sessiongraph.graphql.types.git import GitInfo
from sessiongraph.graphql.types.node import Node
from sessiongraph.graphql.types.pagination import Connection, PageInfo
from sessiongraph.node_ids import operation_node_id
from sessiongraph.stored import saturated_int, tool_input_object

#: The most operations a list of them (not a page) holds: a recordOperations batch.
MAX_OPERATIONS_LIST = 1000
#: Read for every operation whatever is selected: the keyset of a page is (timestamp, id).
_KEYSET_COLUMNS = ("id", "timestamp")


def reads(name: str) -> dict[str, Column]:
    """Metadata of a resolver field computed from the (heavy) column ``name``."""
    return {COLUMN: Column(name, heavy=True)}


def operation_list(description: str) -> Any:
    """A plain list of operations (one batch), bounded for the cost check."""
    return strawberry.field(description=description, metadata={MAX_ITEMS: MAX_OPERATIONS_LIST})


@strawberry.type(
    description="One recorded event of a session: a tool call, a message, a git action, "
    "a lifecycle event."
)
class Operation(Node):
    # Node's field, computed here: strawberry overrides it (mypy knows only dataclasses).
    @strawberry.field(  # type: ignore[misc]
        description="Global id: `op:` + base64url of operationId, unpadded. What `node` "
        "refetches it by, and what client caches key it by.",
        # PostgreSQL writes it in pages of JSON as well (queries._json_value).
        metadata=cell(operation_node_id, "operation_id", json="operation_node_id"),
    )
    def id(self) -> strawberry.ID:
        return strawberry.ID(operation_node_id(self.operation_id))

    operation_id: str = column("Operation id, unique across sessions.")
    session_id: str = column("Id of the session that recorded it.")
    operation_type: str = column(
        "What happened, e.g. tool_execution_started, message_response, "
        "git_commit. An open set: new types appear over time."
    )
    timestamp: datetime | None = column("When it happened.")
    duration_seconds: float | None = column("How long it took.")
    success: bool = column("False when the operation failed.", decode=bool)
    input_tokens: int | None = column("Input tokens it used.", decode=saturated_int)
    output_tokens: int | None = column("Output tokens it produced.", decode=saturated_int)
    total_tokens: int | None = column("Total tokens.", decode=saturated_int)
    tool_name: str | None = column("Tool name, e.g. Bash, Edit.")
    tool_use_id: str | None = column("Pairs a tool call's started and completed operations.")
    tool_input: JSON | None = column(
        "Tool input preview as a JSON object (a non-object preview comes as "
        '{"raw": text}). Heavy: read from the database only when selected.',
        heavy=True,
        decode=tool_input_object,
    )
    tool_output: str | None = column(
        "Tool output preview. Heavy: read only when selected.", heavy=True
    )
    message_role: str | None = column("Message role: user, assistant.")
    message_content: str | None = column(
        "Message text, possibly tens of KB. Heavy: read only when selected.", heavy=True
    )
    thinking_content: str | None = column(
        "Thinking text, possibly tens of KB. Heavy: read only when selected.", heavy=True
    )
    git: GitInfo | None = column(
        "Git facts, for git operations.", heavy=True, decode=GitInfo.from_stored
    )

    @strawberry.field(
        description="Commit SHA.", deprecation_reason="Use git.sha", metadata=reads("git")
    )
    def git_sha(self) -> str | None:
        return self.git.sha if self.git else None

    @strawberry.field(
        description="Commit message.", deprecation_reason="Use git.message", metadata=reads("git")
    )
    def git_message(self) -> str | None:
        return self.git.message if self.git else None

    @strawberry.field(
        description="Branch.", deprecation_reason="Use git.branch", metadata=reads("git")
    )
    def git_branch(self) -> str | None:
        return self.git.branch if self.git else None

    @strawberry.field(
        description="Repository.", deprecation_reason="Use git.repo", metadata=reads("git")
    )
    def git_repo(self) -> str | None:
        return self.git.repo if self.git else None

    @classmethod
    def from_rows(cls, rows: Sequence[Row[Any]]) -> list[Self]:
        """Build from rows of one projection; the columns it did not read stay null."""
        if not rows:
            return []
        build = _builder(cls, rows[0]._fields)  # type: ignore[arg-type]
        return [build(row) for row in rows]


def _declared(cls: type, *, row_fields_only: bool) -> dict[str, Column]:
    """Python attribute -> the column its field reads (the one of its own name unless it
    names another); with ``row_fields_only``, only the fields a row sets, not those a
    resolver computes."""
    columns = {}
    for declared in cls.__strawberry_definition__.fields:  # type: ignore[attr-defined]
        found = declared.metadata.get(COLUMN)
        if found is None or (row_fields_only and declared.base_resolver is not None):
            continue
        name = found.name or declared.python_name
        columns[declared.python_name] = Column(name, found.heavy, found.decode)
    return columns


#: What each Operation field reads, by Python attribute.
COLUMNS = _declared(Operation, row_fields_only=False)
#: Columns every projection reads: the light ones, and what a page's keyset needs.
LIGHT_COLUMNS = frozenset({c.name for c in COLUMNS.values() if not c.heavy} | set(_KEYSET_COLUMNS))
#: Columns read only when a field that needs them is selected.
HEAVY_COLUMNS = frozenset(c.name for c in COLUMNS.values() if c.heavy)


@functools.cache
def _builder(cls: type[Operation], read: tuple[str, ...]) -> Callable[[Row[Any]], Any]:
    """Builds an Operation from a row of the columns ``read``, in that order."""
    plain: list[tuple[str, int]] = []
    decoded: list[tuple[str, int, Callable[[Any], Any]]] = []
    unread: dict[str, None] = {}
    for attribute, declared in _declared(cls, row_fields_only=True).items():
        if declared.name not in read:
            unread[attribute] = None
        elif declared.decode is None:
            plain.append((attribute, read.index(declared.name)))
        else:
            decoded.append((attribute, read.index(declared.name), declared.decode))

    def build(row: Row[Any]) -> Operation:
        values = {attribute: row[position] for attribute, position in plain}
        for attribute, position, decode in decoded:
            values[attribute] = decode(row[position])
        values.update(unread)
        return cls(**values)

    return build


def operation_columns(info: Info) -> frozenset[str]:
    """The columns the operations under this field need: the light ones and the heavy
    ones a selected field declares. Kept with the field's plan."""
    return columns_of(field_plan(info))


def columns_of(field: FieldPlan | None) -> frozenset[str]:
    """``operation_columns`` of a field of the plan (every column when it is unknown)."""
    if field is None:
        return LIGHT_COLUMNS | HEAVY_COLUMNS
    columns: frozenset[str] | None = field.memo.get("operation_columns")
    if columns is None:
        heavy = set()
        for selected in selected_on(field, "Operation"):
            declared = COLUMNS.get(python_name(selected) or "")
            if declared is not None and declared.heavy:
                heavy.add(declared.name)
        columns = field.memo["operation_columns"] = LIGHT_COLUMNS | frozenset(heavy)
    return columns


def refetched_columns(field: FieldPlan | None) -> frozenset[str]:
    """The columns of the operations a field of Node type (``node``, ``nodes``) returns:
    the light ones and the heavy ones selected on Operation right there, not those that
    the pages of sessions below it select (they read their own)."""
    if field is None:
        return LIGHT_COLUMNS | HEAVY_COLUMNS
    columns: frozenset[str] | None = field.memo.get("refetched_columns")
    if columns is None:
        selection = field.selections.get("Operation")
        heavy = {
            declared.name
            for selected in (selection.fields if selection is not None else [])
            if (declared := COLUMNS.get(python_name(selected) or "")) is not None and declared.heavy
        }
        columns = field.memo["refetched_columns"] = LIGHT_COLUMNS | frozenset(heavy)
    return columns


@strawberry.type(description="An operation and its cursor.")
class OperationEdge:
    cursor: str = strawberry.field(description="Pass as `after` to continue after this one.")
    node: Operation = strawberry.field(description="The operation.")


def _page_operations(self: OperationConnection) -> list[Operation]:
    return self.operations()


@strawberry.type(description="A page of a session's operations, oldest first.")
class OperationConnection(Connection):
    nodes: list[Operation] = strawberry.field(
        resolver=_page_operations,
        description="The operations of this page.",
        metadata={ROWS: "_rows"},
    )
    page_info: PageInfo = strawberry.field(description="Where this page is.")
    #: The page's rows, one per operation, as read.
    _rows: strawberry.Private[Sequence[Row[Any]]]
    _session_id: strawberry.Private[str]
    _filters: strawberry.Private[OperationFilter]
    _cursors: strawberry.Private[PageCursors]
    _built: strawberry.Private[list[Operation] | None] = None
    #: The page's operations as the JSON the database wrote, instead of ``_rows``:
    #: made only for the compiled path, which reads it (``JSON_OF_ROWS``).
    _json: strawberry.Private[str | None] = None
    #: ``totalCount`` when it is known without counting: unfiltered, the session's
    #: ``operation_count``.
    _total: strawberry.Private[int | None] = None

    def operations(self) -> list[Operation]:
        """The page's operations, built from its rows once."""
        if self._json is not None:
            raise RuntimeError("this page was read as JSON, for the compiled path only")
        if self._built is None:
            self._built = Operation.from_rows(self._rows)
        return self._built

    @strawberry.field(description="The operations of this page with their cursors.")
    def edges(self) -> list[OperationEdge]:
        return [
            OperationEdge(cursor=cursor, node=node)
            for cursor, node in zip(self._cursors.all(), self.operations(), strict=True)
        ]

    @strawberry.field(description="Operations of the session matching the filters, all pages.")
    async def total_count(self, info: Info) -> int:
        if self._total is not None:
            return self._total
        return await info.context.loaders.operation_count_by_session.load(
            (self._session_id, self._filters)
        )
