"""What a field declares about itself, and where a resolver finds its field in the plan.

Types declare beside each field what the plan's readers need to know of it, as
``strawberry.field(metadata=...)``: which columns it reads (and whether they are
heavy), whether its value is read ahead for a whole page, how many items an
unpaged list can hold. The column projection, row decoding, prefetching, the
cost check and the compiled executor read these declarations from the plan,
never a list kept in step by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import strawberry

from sessiongraph.graphql.context import Info
from sessiongraph.graphql.plan import FieldPlan, plan_operation

#: metadata key: the ``Column`` a field reads.
COLUMN = "sessiongraph.column"
#: metadata key: a loader-backed field that pages read ahead for all their objects.
PREFETCHED = "sessiongraph.prefetched"
#: metadata key: the most items an unpaged list of objects holds (for the cost).
MAX_ITEMS = "sessiongraph.max_items"
#: metadata key: a field with arguments that pages read ahead for all their objects,
#: once per field of the plan (``_prefetched`` keyed by the ``FieldPlan``).
PREFETCHED_BY_PLAN = "sessiongraph.prefetched_by_plan"
#: metadata key: a list field whose items are made one per row of the object's
#: attribute of this name; the compiled path may build them from the rows directly.
ROWS = "sessiongraph.rows"
#: The attribute of such an object holding its list as JSON text the database built,
#: instead of rows; only the compiled path reads it (``Context.compiled``).
JSON_OF_ROWS = "_json"
#: metadata key: how many nodes a list field can return, from its arguments: a function
#: of a function reading an argument's coerced value by name (for the cost).
SIZE = "sessiongraph.size"
#: metadata key: the least a field costs, whatever it returns (an aggregate's work).
LEAST_COST = "sessiongraph.least_cost"
#: metadata key: the ``Cell`` a resolver field of such objects is computed from.
CELL = "sessiongraph.cell"


@dataclass(frozen=True, slots=True)
class Column:
    """The database column a field reads: whether it is read only when selected
    (heavy), and how its stored value becomes the field's (as is, when None)."""

    name: str
    heavy: bool = False
    decode: Callable[[Any], Any] | None = None


@dataclass(frozen=True, slots=True)
class Cell:
    """A field whose resolver computes its value from columns of the object's row alone:
    ``compute`` of those columns' stored values, in order, is what the resolver returns.
    From rows (``ROWS``), the compiled path computes it without building the object."""

    columns: tuple[str, ...]
    compute: Callable[..., Any]
    json: str | None = None
    """How the database writes the value of its one column as JSON (a
    ``queries.JsonKind``), where it can: then a page of such objects can be JSON the
    database built."""


def column(
    description: str, *, heavy: bool = False, decode: Callable[[Any], Any] | None = None
) -> Any:
    """A field holding the column of its own name; a heavy one is read only when selected."""
    return strawberry.field(description=description, metadata={COLUMN: Column("", heavy, decode)})


def cell(compute: Callable[..., Any], *columns: str, json: str | None = None) -> dict[str, Cell]:
    """Metadata of a resolver field computed by ``compute`` from ``columns``."""
    return {CELL: Cell(columns, compute, json)}


def field_plan(info: Info) -> FieldPlan | None:
    """The plan of the field ``info`` resolves; None if graphql-core collected it
    otherwise than planned (then read as if everything were selected)."""
    raw = info._raw_info
    plan = plan_operation(raw.schema, raw.operation, raw.fragments, variables_of(info))
    return plan.field(raw.parent_type, raw.field_nodes)


def variables_of(info: Info) -> Mapping[str, Any]:
    """The request's variables as execution coerced them (defaults applied)."""
    values: Any = info._raw_info.variable_values
    variables: Mapping[str, Any] = getattr(values, "coerced", values)
    return variables


def selected_on(field: FieldPlan, type_name: str) -> Iterator[FieldPlan]:
    """The fields selected on objects of ``type_name`` at or below ``field``'s value:
    through a connection's ``nodes`` and ``edges { node }``, or a plain list."""
    seen: set[int] = set()
    pending = list(field.selections.values())
    while pending:
        selection = pending.pop()
        if id(selection) in seen:
            continue
        seen.add(id(selection))
        if selection.type.name == type_name:
            yield from selection.fields
            continue
        for child in selection.fields:
            pending.extend(child.selections.values())


def python_name(field: FieldPlan) -> str | None:
    """The Python attribute behind a field (None for ``__typename`` and unknown fields)."""
    if field.definition is None:
        return None
    declared: Any = field.definition.extensions.get("strawberry-definition")
    return getattr(declared, "python_name", None)
