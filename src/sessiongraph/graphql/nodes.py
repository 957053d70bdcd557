"""``node`` and ``nodes``: objects refetched by their global ids (``node_ids``).

Exact matches only, never a prefix: a session's global id is its id, an operation's
names its operation id. Every id of a request is looked up at once, whatever their
number: one statement for the sessions (then the page reads of what is selected on
them, as for any list of sessions: ``prefetch``), one for the operations. An id that
no object can have (malformed, too long, another kind's prefix) is null, and costs no
statement.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sessiongraph.db import queries
from sessiongraph.graphql.context import Info
from sessiongraph.graphql.fields import field_plan
from sessiongraph.graphql.types.node import Node
from sessiongraph.graphql.types.operation import Operation, refetched_columns
from sessiongraph.graphql.types.session import Session, prefetch
from sessiongraph.inputs import MAX_ID_LENGTH
from sessiongraph.node_ids import OPERATION_PREFIX, operation_id_of

#: The most ids one ``nodes`` call looks up.
MAX_NODES = 100


def _could_be_an_id(value: str) -> bool:
    """Whether a stored id could be ``value`` (``inputs.check_id`` lets only these in)."""
    return bool(value.strip()) and len(value) <= MAX_ID_LENGTH and value.isprintable()


async def load_nodes(info: Info, ids: Sequence[str]) -> list[Node | None]:
    """The object of each id of ``ids``, in order; None where nothing has it."""
    session_ids: list[str] = []
    operation_ids: dict[str, str] = {}  # global id -> operation id
    for node_id in ids:
        if node_id.startswith(OPERATION_PREFIX):
            operation_id = operation_id_of(node_id)
            if operation_id is not None and _could_be_an_id(operation_id):
                operation_ids[node_id] = operation_id
        elif _could_be_an_id(node_id):
            session_ids.append(node_id)
    sessions, operations = await asyncio.gather(
        _sessions(info, session_ids), _operations(info, list(operation_ids.values()))
    )
    found: dict[str, Node] = {**sessions}
    for node_id, operation_id in operation_ids.items():
        operation = operations.get(operation_id)
        if operation is not None:
            found[node_id] = operation
    return [found.get(node_id) for node_id in ids]


async def _sessions(info: Info, ids: list[str]) -> dict[str, Session]:
    if not ids:
        return {}
    rows = await queries.fetch_sessions(engine=info.context.engine, ids=ids)
    sessions = {session_id: Session.from_row(row) for session_id, row in rows.items()}
    await prefetch(info, list(sessions.values()))
    return sessions


async def _operations(info: Info, ids: list[str]) -> dict[str, Operation]:
    if not ids:
        return {}
    rows = await queries.fetch_operations_by_id(
        engine=info.context.engine,
        operation_ids=ids,
        columns=refetched_columns(field_plan(info)),
    )
    built = Operation.from_rows(list(rows.values()))
    return {operation.operation_id: operation for operation in built}
