"""The three standard queries in each server's own GraphQL, and what their answers share.

sessiongraph's queries are bench/response.py's. Each PostGraphile query asks for the
same rows in the same order, and for the raw columns the client would need to show
what sessiongraph shows: sessiongraph's display fields (``totalCostDisplay``,
``reposDisplay``, ...) are its own, so a peer returns the column each is made from,
and the check formats that column with sessiongraph's own display functions.
``workflowName`` is a lookup PostGraphile cannot make here (``sessions.workflow_id``
has no foreign key), so only sessiongraph asks for it and it is not compared.

Orders: sessiongraph lists sessions newest ``started_at`` first, NULLs last, ties by
id descending, and a session's operations oldest first, NULL timestamps last, ties by
the operation's surrogate key. The peers are asked for exactly that order
(``[STARTED_AT_DESC, ID_DESC]``, ``[TIMESTAMP_ASC, ID_ASC]``) with their "NULLs last"
option set, so even pages that reach the undated sessions compare row for row (by
offset: the peers' cursors never get past the last dated session, as run.py shows).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sessiongraph import display

OPERATION_FIELDS = "operationId operationType timestamp toolName success durationSeconds"

SESSIONGRAPH_DASHBOARD = """{ sessions(first: 50) { totalCount nodes {
  id status workflowName phaseDisplay agentModel agentModelDisplay reposDisplay
  inputTokensDisplay outputTokensDisplay totalTokens totalTokensDisplay totalCostUsd
  totalCostDisplay startedAt completedAt durationSeconds durationDisplay errorMessage
  operationCount } } }"""
SESSIONGRAPH_TIMELINE = (
    "query ($id: String!) { session(id: $id) { id operations(first: 500) { nodes { "
    + OPERATION_FIELDS
    + " } } } }"
)
SESSIONGRAPH_BFF = (
    "{ sessions(first: 200) { nodes { id operations(first: 50) { nodes { "
    + OPERATION_FIELDS
    + " } } } } }"
)
#: Check only: every session, page by page, in the default order.
SESSIONGRAPH_ORDER = """query ($after: String) { sessions(first: 200, after: $after) {
  pageInfo { hasNextPage endCursor } nodes { id startedAt } } }"""


@dataclass(frozen=True)
class Dialect:
    """How a PostGraphile version names a table's ``id`` column and a row by it."""

    id_field: str  # the column `id` (v5 calls it rowId: `id` is its global Node id)
    id_order: str  # its orderBy value stem
    by_id: str  # the root field reading one session by its id

    def dashboard(self) -> str:
        return (
            f"{{ allSessions(first: 50, orderBy: [STARTED_AT_DESC, {self.id_order}_DESC]) {{ "
            f"totalCount nodes {{ {self.id_field} status workflowId phaseId agentModel repos "
            "inputTokens outputTokens totalTokens totalCostUsd startedAt completedAt "
            "durationSeconds errorMessage operationsBySessionId { totalCount } } } }"
        )

    def order(self, *, by_offset: bool) -> str:
        variable, argument = (
            ("$offset: Int", "offset") if by_offset else ("$after: Cursor", "after")
        )
        return (
            f"query ({variable}) {{ allSessions(first: 200, {argument}: ${argument}, "
            f"orderBy: [STARTED_AT_DESC, {self.id_order}_DESC]) {{ "
            f"pageInfo {{ hasNextPage endCursor }} nodes {{ {self.id_field} startedAt }} }} }}"
        )

    def operations(self, first: int) -> str:
        return (
            f"operationsBySessionId(first: {first}, orderBy: [TIMESTAMP_ASC, "
            f"{self.id_order}_ASC]) {{ nodes {{ {OPERATION_FIELDS} }} }}"
        )

    def timeline(self) -> str:
        return (
            f"query ($id: String!) {{ {self.by_id}({self.id_field}: $id) {{ {self.id_field} "
            f"{self.operations(500)} }} }}"
        )

    def bff(self) -> str:
        return (
            f"{{ allSessions(first: 200, orderBy: [STARTED_AT_DESC, {self.id_order}_DESC]) {{ "
            f"nodes {{ {self.id_field} {self.operations(50)} }} }} }}"
        )


POSTGRAPHILE4 = Dialect(id_field="id", id_order="ID", by_id="sessionById")
POSTGRAPHILE5 = Dialect(id_field="rowId", id_order="ROW_ID", by_id="sessionByRowId")
DIALECTS = {"postgraphile4": POSTGRAPHILE4, "postgraphile5": POSTGRAPHILE5}


@dataclass(frozen=True)
class Query:
    key: str
    title: str
    sessiongraph: str
    peer: Callable[[Dialect], str]
    #: (data, the peer's dialect or None for sessiongraph) -> what all must answer alike
    shared: Callable[[dict[str, Any], Dialect | None], Any]
    describe: Callable[[Any], str]


def requests(query: Query, timeline_id: str) -> dict[str, dict[str, Any]]:
    """The request body each server gets for ``query``."""
    variables = {"id": timeline_id} if query.key == "timeline" else {}
    bodies = {"sessiongraph": {"query": query.sessiongraph, "variables": variables}}
    for key, dialect in DIALECTS.items():
        bodies[key] = {"query": query.peer(dialect), "variables": variables}
    return bodies


# -- what the answers share --------------------------------------------------------------
def parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _operation(node: dict[str, Any]) -> tuple[Any, ...]:
    return (
        node["operationId"],
        node["operationType"],
        parse_time(node["timestamp"]),
        node["toolName"],
        node["success"],
        node["durationSeconds"],
    )


def _dashboard_row(node: dict[str, Any], peer: Dialect | None) -> dict[str, Any]:
    if peer is None:
        shown = {
            key: node[key]
            for key in (
                "phaseDisplay", "agentModelDisplay", "reposDisplay", "inputTokensDisplay",
                "outputTokensDisplay", "totalTokensDisplay", "totalCostDisplay", "durationDisplay",
            )
        }  # fmt: skip
        row_id, status, count = node["id"], node["status"].lower(), node["operationCount"]
    else:
        cost = Decimal(node["totalCostUsd"])
        shown = {
            "phaseDisplay": display.format_phase(node["phaseId"]),
            "agentModelDisplay": display.format_model_compact(node["agentModel"]),
            "reposDisplay": display.format_repos(node["repos"] or None),
            "inputTokensDisplay": display.format_tokens(int(node["inputTokens"])),
            "outputTokensDisplay": display.format_tokens(int(node["outputTokens"])),
            "totalTokensDisplay": display.format_tokens(int(node["totalTokens"])),
            "totalCostDisplay": display.format_cost(cost),
            "durationDisplay": display.format_duration_seconds(node["durationSeconds"]),
        }
        row_id, status = node[peer.id_field], node["status"]
        count = node["operationsBySessionId"]["totalCount"]
    return {
        "id": row_id,
        "status": status,
        "agentModel": node["agentModel"],
        "totalTokens": int(node["totalTokens"]),
        "totalCostUsd": Decimal(node["totalCostUsd"]),
        "startedAt": parse_time(node["startedAt"]),
        "completedAt": parse_time(node["completedAt"]),
        "durationSeconds": node["durationSeconds"],
        "errorMessage": node["errorMessage"],
        "operationCount": count,
        **shown,
    }


def dashboard_shared(data: dict[str, Any], peer: Dialect | None) -> Any:
    connection = data["sessions" if peer is None else "allSessions"]
    rows = [_dashboard_row(node, peer) for node in connection["nodes"]]
    return {"totalCount": connection["totalCount"], "rows": rows}


def timeline_shared(data: dict[str, Any], peer: Dialect | None) -> Any:
    if peer is None:
        session, key, connection = data["session"], "id", "operations"
    else:
        session, key, connection = data[peer.by_id], peer.id_field, "operationsBySessionId"
    return {"id": session[key], "operations": [_operation(n) for n in session[connection]["nodes"]]}


def bff_shared(data: dict[str, Any], peer: Dialect | None) -> Any:
    if peer is None:
        nodes, key, connection = data["sessions"]["nodes"], "id", "operations"
    else:
        nodes, key = data["allSessions"]["nodes"], peer.id_field
        connection = "operationsBySessionId"
    return [(node[key], [_operation(n) for n in node[connection]["nodes"]]) for node in nodes]


QUERIES = (
    Query(
        "dashboard",
        "dashboard: 50 sessions (sessiongraph 19 fields, peers the 15 raw columns behind them)",
        SESSIONGRAPH_DASHBOARD,
        Dialect.dashboard,
        dashboard_shared,
        lambda shared: f"{len(shared['rows'])} sessions of {shared['totalCount']}, 18 fields each",
    ),
    Query(
        "timeline",
        "timeline: one session's first 500 operations, 6 fields each",
        SESSIONGRAPH_TIMELINE,
        Dialect.timeline,
        timeline_shared,
        lambda shared: f"{len(shared['operations'])} operations of session {shared['id']}",
    ),
    Query(
        "bff",
        "BFF: 200 sessions x their first 50 operations, 6 fields each",
        SESSIONGRAPH_BFF,
        Dialect.bff,
        bff_shared,
        lambda shared: f"{len(shared)} sessions, {sum(len(ops) for _, ops in shared)} operations",
    ),
)
