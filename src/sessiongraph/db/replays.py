"""Whether a retried write is the same call again: what ``startSession`` and
``completeSession`` compare with the stored session once the database has decided that
the row is there (the INSERT's conflict, the conditional UPDATE's row count).

A client that got no answer (a time limit, a dropped connection, an outage) cannot know
whether its write committed, so it sends it again. The same input again returns what is
stored and writes nothing; other values are a ``Conflict`` naming the columns that
differ. "The same" is judged on what the call would store, not on the request's text:

- a value the server chooses when it is omitted (a generated id, ``startedAt`` or
  ``completedAt`` now) is not compared when it is omitted: a retry gets another now;
- an omitted optional value stores NULL, an empty list or an empty object, and compares
  as that (no ``repos`` is the same as ``repos: []``, no ``errorMessage`` as null);
- completion counts and costs the call omits are left as the session's operations
  counted them, so they are compared only when given (``totalTokens``, when omitted
  but some count is given, as the sum it would store);
- times compare as instants (``08:00Z`` and ``10:00+02:00`` are the same), to the
  microsecond both databases keep;
- money compares as a decimal value (``1.5`` is ``1.50``), on SQLite as the double it
  stores; ``costByModel`` as models (in any order) with such amounts;
- JSON compares as JSON values: keys in any order, numbers by value (``1`` is ``1.0``),
  ``true`` is not ``1``;
- ``startSession``'s status is the one the session started in, which it may have left
  since: a finished session matches PENDING and RUNNING alike, a pending or running one
  only its own;
- ``workflowName`` is not compared: it is the workflow's, which a later session may
  have renamed; a retry that returns the stored session renames nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

#: The sessions columns ``startSession`` writes and a retry is compared on, in the
#: order differences are reported.
START_COLUMNS = (
    "workflow_id",
    "execution_id",
    "phase_id",
    "milestone_id",
    "status",
    "agent_provider",
    "agent_model",
    "repos",
    "workspace_path",
    "started_at",
    "metadata",
)

_FINISHED = frozenset({"completed", "failed", "cancelled"})


def start_differences(
    stored: Mapping[Any, Any], row: Mapping[str, Any], *, chosen: frozenset[str]
) -> list[str]:
    """The columns in which ``row`` (what startSession would insert) differs from the
    stored session; ``chosen`` are the columns the server filled in for this call."""
    differences = []
    for name in START_COLUMNS:
        if name in chosen:
            continue
        mine, theirs = row[name], stored[name]
        if name == "status":
            same = theirs == mine or theirs in _FINISHED
        elif name in ("repos", "metadata"):
            same = same_json(mine, theirs)
        elif name == "started_at":
            same = same_instant(mine, theirs)
        else:
            same = mine == theirs
        if not same:
            differences.append(name)
    return differences


def completion_differences(
    stored: Mapping[Any, Any],
    values: Mapping[str, Any],
    *,
    token_columns: Sequence[str],
    sqlite: bool,
) -> list[str]:
    """The columns in which a completion differs from the stored, finished session.
    ``values`` holds what the completion gives: ``status`` and ``error_message``
    always, every other column only when the call gave it."""
    differences = []
    for name, mine in values.items():
        theirs = stored[name]
        if name == "completed_at":
            same = same_instant(mine, theirs)
        elif name == "total_cost_usd":
            same = same_money(mine, theirs, sqlite=sqlite)
        elif name == "cost_by_model":
            same = mine.keys() == theirs.keys() and all(
                same_money(Decimal(mine[m]), Decimal(theirs[m]), sqlite=sqlite) for m in mine
            )
        else:
            same = mine == theirs
        if not same:
            differences.append(name)
    counted = any(name in values for name in token_columns)
    if counted and "total_tokens" not in values:
        total = sum(values.get(name, stored[name]) for name in token_columns)
        if total != stored["total_tokens"]:
            differences.append("total_tokens")
    return differences


def same_instant(mine: datetime | None, theirs: datetime | None) -> bool:
    if mine is None or theirs is None:
        return mine is theirs
    return mine == theirs  # aware datetimes compare as instants


def same_money(mine: Decimal, theirs: Decimal, *, sqlite: bool) -> bool:
    # SQLite keeps a double (``Money``): what it stored of ``mine`` is float(mine).
    return mine == theirs or (sqlite and float(mine) == float(theirs))


def same_json(mine: Any, theirs: Any) -> bool:
    """Whether two decoded JSON values are the same JSON value. Iterative: a stored
    value may be nested deeper than Python's recursion limit."""
    pending = [(mine, theirs)]
    while pending:
        a, b = pending.pop()
        if isinstance(a, dict):
            if not isinstance(b, dict) or a.keys() != b.keys():
                return False
            pending.extend((a[key], b[key]) for key in a)
        elif isinstance(a, list):
            if not isinstance(b, list) or len(a) != len(b):
                return False
            pending.extend(zip(a, b, strict=True))
        elif _is_number(a):
            if not _is_number(b) or a != b:
                return False
        elif type(a) is not type(b) or a != b:  # strings, booleans, null
            return False
    return True


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)
