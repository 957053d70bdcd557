"""A compiled path through graphql-core's execution for fields that only read their source.

graphql-core completes every field through several generic calls: build an info
object, call the resolver, complete the value by type. Most fields of a large
response need none of that: ``operationType`` of an Operation is an attribute of the
object, a leaf to serialize. Each selection set graphql-core collects is found in the
operation's plan (``plan.py``), and the plan's selection gets readers: for every
response key, either a reader that produces the completed value straight from the
source object, or nothing, which leaves the key to graphql-core. Readers are kept
with the plan, which outlives the request, so the next request with the same query
builds none.

Resolvers that are real code (loaders, arguments, ``info``) run through graphql-core,
unless the object already holds their value, read ahead for its whole page
(``_prefetched``), which the resolver would return itself.

A reader never decides anything GraphQL specifies: when a value is not plainly
valid (null for a non-null field, a value a scalar cannot serialize, an exception
object), the reader gives up and graphql-core completes that field again from the
start, producing exactly its result and error. Reading is free of side effects, so
doing it twice changes nothing.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import orjson
from graphql import (
    GRAPHQL_MAX_INT,
    GRAPHQL_MIN_INT,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLField,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLString,
    Undefined,
)
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.fields.resolver import SELF_PARAMSPEC

from sessiongraph.db.queries import JsonField
from sessiongraph.graphql.context import Context
from sessiongraph.graphql.fields import (
    COLUMN,
    JSON_OF_ROWS,
    PREFETCHED,
    PREFETCHED_BY_PLAN,
    ROWS,
)
from sessiongraph.graphql.plan import FieldPlan, SelectionPlan, Signature, plan_operation

Reader = Callable[[Any], Any]
#: For each response key of a selection, in order: its reader, or None for graphql-core.
Readers = list[tuple[str, "Reader | None"]]


class GiveUp(Exception):
    """The fast path cannot complete this value; graphql-core will.

    Raised new each time: one shared instance would keep its last traceback, and the
    request's objects with it, alive.
    """


class CompiledExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Middleware wraps every resolver: then only graphql-core knows what a field does.
        wrapped = getattr(self.middleware_manager, "_middleware_resolvers", None)
        plan = None
        if not wrapped:
            plan = plan_operation(
                self.schema, self.operation, self.fragment_definitions, self.variable_values.coerced
            )
        #: The operation's plan, when graphql-core collects exactly what it says.
        self._plan = plan if plan is not None and plan.exact else None
        if self._plan is not None and isinstance(self.context_value, Context):
            # Resolvers may hand over values only these readers read (JSON the
            # database built): every planned selection is read here.
            self.context_value.compiled = True
        #: id(grouped field set) -> (the set, kept alive so the id stays its own; its plan)
        self._plans: dict[int, tuple[Any, SelectionPlan | None]] = {}

    def build_per_event_executor(self, payload: Any) -> CompiledExecutionContext:
        executor = cast("CompiledExecutionContext", super().build_per_event_executor(payload))
        # Each event of a subscription collects its fields anew: memos keyed by one
        # event's field sets would grow for as long as the subscription lives.
        executor._relevant_sub_fields = {}
        executor._plans = {}
        return executor

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: Any,
        position_context: Any,
    ) -> Any:
        selection = self._selection(parent_type, grouped_field_set)
        if selection is None:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        results: dict[str, Any] = {}
        slow: dict[str, Any] = {}
        for key, reader in readers_of(selection):
            if reader is not None:
                try:
                    results[key] = reader(source_value)
                    continue
                except Exception:  # anything unusual: graphql-core does it, errors and all
                    pass
            slow[key] = grouped_field_set[key]
            results[key] = Undefined  # keeps the response's key order
        if not slow:
            return results
        completed = super().execute_fields(parent_type, source_value, path, slow, position_context)
        if isinstance(completed, dict):
            return _merge(results, completed)

        async def merge() -> dict[str, Any]:
            return _merge(results, await completed)

        return merge()

    def _selection(
        self, parent_type: GraphQLObjectType, grouped_field_set: Any
    ) -> SelectionPlan | None:
        """The planned selection graphql-core collected as ``grouped_field_set``."""
        if self._plan is None:
            return None
        cached = self._plans.get(id(grouped_field_set))
        if cached is not None:
            return cached[1]
        signature = _signature(parent_type, grouped_field_set)
        selection = None if signature is None else self._plan.selection(signature)
        if selection is not None and selection.type is not parent_type:
            selection = None
        self._plans[id(grouped_field_set)] = (grouped_field_set, selection)
        return selection


def readers_of(selection: SelectionPlan) -> Readers:
    """The readers of a planned selection, built once and kept with the plan."""
    readers: Readers | None = selection.memo.get("readers")
    if readers is None:
        readers = selection.memo["readers"] = [
            (field.key, _reader(field)) for field in selection.fields
        ]
    return readers


def _reader(field: FieldPlan) -> Reader | None:
    """How to complete this field from its source alone, or None."""
    if field.name == "__typename":
        type_name = field.parent.name
        return lambda _source: type_name
    definition = field.definition
    if definition is None:
        return None
    if not _plain_nodes(field, arguments=True):
        return None
    metadata = field.metadata
    if metadata.get(PREFETCHED_BY_PLAN):
        # Its arguments were read with the page: the value is there, or graphql-core
        # runs the resolver (which reports what the arguments got wrong).
        completer = _completer(definition.type, field)
        if completer is None:
            return None
        done: Reader = completer
        return lambda source: done(source._prefetched[field])
    if not _plain_nodes(field, arguments=False) or definition.args:
        return None
    rows = metadata.get(ROWS)
    if rows is not None:
        from_rows = _rows_reader(field, rows)
        if from_rows is not None:
            return from_rows
    read = _source_reader(definition)
    if read is None:
        return None
    leaf = _leaf_of(definition.type)
    if leaf is not None:
        return _leaf_reader(read, *leaf)
    complete = _completer(definition.type, field)
    if complete is None:
        return None
    return lambda source: complete(read(source))


def _completer(type_: GraphQLOutputType, field: FieldPlan) -> Reader | None:
    """Completes a value of ``type_`` as graphql-core would, or gives up."""
    leaf = _leaf_of(type_)
    if leaf is not None:
        return _leaf_completer(*leaf)
    if isinstance(type_, GraphQLNonNull):
        inner = _completer(type_.of_type, field)
        if inner is None:
            return None

        def non_null(value: Any) -> Any:
            if value is None:
                raise GiveUp
            return inner(value)

        return non_null
    if isinstance(type_, GraphQLList):
        item = _completer(type_.of_type, field)
        if item is None:
            return None

        def items(value: Any) -> Any:
            if value is None:
                return None
            if not isinstance(value, list | tuple):
                raise GiveUp
            return [item(v) for v in value]

        return items
    if isinstance(type_, GraphQLObjectType) and type_.is_type_of is None:
        children = field.selections.get(type_.name)
        if children is None:
            return None
        plan = readers_of(children)
        if any(reader is None for _, reader in plan):
            return None  # graphql-core completes it, with this plan for its plain keys
        readers = [(key, reader) for key, reader in plan if reader is not None]

        def obj(value: Any) -> Any:
            if value is None:
                return None
            if value is Undefined or isinstance(value, Exception):
                raise GiveUp
            return {key: reader(value) for key, reader in readers}

        return obj
    return None


def _signature(parent_type: GraphQLObjectType, grouped_field_set: Any) -> Signature | None:
    """The selection set's identity across requests, or None if it has none."""
    fields = []
    for key, details in grouped_field_set.items():
        if any(d.fragment_variable_values is not None for d in details):
            return None  # fragment arguments: values of this request
        fields.append((key, tuple(id(d.node) for d in details)))
    return parent_type.name, tuple(fields)


LeafType = GraphQLScalarType | GraphQLEnumType

#: Scalars whose values of exactly this Python type serialize as themselves.
_SELF_SERIALIZING: dict[LeafType, type] = {GraphQLString: str, GraphQLID: str, GraphQLBoolean: bool}


def _leaf_of(type_: GraphQLOutputType) -> tuple[LeafType, bool] | None:
    """The scalar or enum type, and whether null is allowed, for a leaf type."""
    named = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
    if isinstance(named, GraphQLScalarType | GraphQLEnumType):
        return named, named is type_
    return None


def _leaf_completer(type_: LeafType, nullable: bool) -> Reader:
    coerce = type_.coerce_output_value

    def leaf(value: Any) -> Any:
        if value is None:
            if nullable:
                return None
            raise GiveUp
        if value is Undefined or isinstance(value, Exception):
            raise GiveUp
        try:
            coerced = coerce(value)
        except Exception:
            raise GiveUp from None
        if coerced is None or coerced is Undefined:
            raise GiveUp
        return coerced

    return leaf


def _leaf_reader(read: Reader, type_: LeafType, nullable: bool) -> Reader:
    """Reads and completes a leaf field. The values most fields hold (a ``str`` for a
    String, a 32-bit ``int`` for an Int...) serialize as themselves: one type check
    passes them through; anything else goes the general way."""
    complete = _leaf_completer(type_, nullable)
    if type_ is GraphQLInt:

        def int_field(source: Any) -> Any:
            value = read(source)
            if type(value) is int and GRAPHQL_MIN_INT <= value <= GRAPHQL_MAX_INT:
                return value
            return complete(value)

        return int_field
    if type_ is GraphQLFloat:

        def float_field(source: Any) -> Any:
            value = read(source)
            if type(value) is float and math.isfinite(value):
                return value
            return complete(value)

        return float_field
    exact = _SELF_SERIALIZING.get(type_)
    if exact is None:
        return lambda source: complete(read(source))

    def exact_field(source: Any) -> Any:
        value = read(source)
        return value if type(value) is exact else complete(value)

    return exact_field


def _merge(results: dict[str, Any], completed: Mapping[str, Any]) -> dict[str, Any]:
    for key in list(results):
        if results[key] is Undefined:
            if key in completed:
                results[key] = completed[key]
            else:  # graphql-core left the key out (an unknown field)
                del results[key]
    return results


def _has_non_skip_directive(directives: Iterable[Any]) -> bool:
    # @skip and @include are applied by field collection; anything else is unknown here.
    return any(d.name.value not in ("skip", "include") for d in directives)


def _source_reader(field: GraphQLField) -> Reader | None:
    """Read the field's value from its source, for fields whose resolver does only that."""
    definition = field.extensions.get("strawberry-definition")
    if definition is None or definition.extensions:
        return None
    if getattr(field.resolve, "_is_default", False):
        if definition.default_resolver is not getattr:
            return None
        return operator.attrgetter(definition.python_name)
    resolver = definition.base_resolver
    if resolver is None or resolver.arguments:
        return None
    if resolver.is_async:
        if not definition.metadata.get(PREFETCHED):
            return None
        return _prefetched_reader(definition.python_name)
    reserved = resolver.reserved_parameters
    if any(param is not None for spec, param in reserved.items() if spec is not SELF_PARAMSPEC):
        return None
    if reserved.get(SELF_PARAMSPEC) is None:
        return None
    function = resolver.wrapped_func
    if isinstance(function, staticmethod | classmethod) or not callable(function):
        return None
    reader: Reader = function
    return reader


def _prefetched_reader(name: str) -> Reader:
    """A loader-backed field declared read ahead (``PREFETCHED``), whose value a page read
    for all its objects (a ``_prefetched`` mapping on the object); without it,
    graphql-core runs the resolver."""

    def read(source: Any) -> Any:
        values = getattr(source, "_prefetched", None)
        if not values or name not in values:
            raise GiveUp
        return values[name]

    return read


#: The cells of a row: per response key, what completes it from the row.
Cells = list[tuple[str, Reader]]


def _rows_reader(field: FieldPlan, attribute: str) -> Reader | None:
    """Completes a list of objects made one per row (``ROWS``) from the rows themselves,
    when each selected field is a column read as is: no object per row, one cell per
    field. None when some field needs the object."""
    named = field.definition.type if field.definition is not None else None
    while isinstance(named, GraphQLNonNull | GraphQLList):
        named = named.of_type
    if not isinstance(named, GraphQLObjectType) or named.is_type_of is not None:
        return None
    selection = field.selections.get(named.name)
    if selection is None or _row_cells(selection, None) is None:
        return None
    #: per projection (the rows' columns): the keys, and their cells in order
    by_columns: dict[tuple[str, ...], tuple[tuple[str, ...], tuple[Reader, ...]]] = {}

    def read(source: Any) -> Any:
        built = getattr(source, JSON_OF_ROWS, None)
        if built is not None:
            return orjson.Fragment(built)
        rows = getattr(source, attribute)
        if not rows:
            return []
        columns = rows[0]._fields
        found = by_columns.get(columns)
        if found is None:
            cells = _row_cells(selection, columns)
            if cells is None:
                raise GiveUp  # a column the projection did not read: the objects know
            found = by_columns[columns] = (
                tuple(key for key, _ in cells),
                tuple(cell for _, cell in cells),
            )
        keys, readers = found
        return [dict(zip(keys, [cell(row) for cell in readers], strict=True)) for row in rows]

    return read


def _row_cells(selection: SelectionPlan, columns: tuple[str, ...] | None) -> Cells | None:
    """Per field of ``selection``, its cell over rows of ``columns`` (with None: whether
    every field can have one)."""
    cells: Cells = []
    for field in selection.fields:
        if field.name == "__typename":
            cells.append((field.key, _constant(field.parent.name)))
            continue
        definition = field.definition
        if definition is None or definition.args or not _plain_nodes(field, arguments=False):
            return None
        declared: Any = definition.extensions.get("strawberry-definition")
        column = declared.metadata.get(COLUMN) if declared is not None else None
        leaf = _leaf_of(definition.type)
        if column is None or declared.base_resolver is not None or leaf is None:
            return None
        name = column.name or declared.python_name
        if columns is None:
            cells.append((field.key, _identity))
            continue
        if name not in columns:
            return None
        read: Reader = operator.itemgetter(columns.index(name))
        if column.decode is not None:
            read = _decoded(read, column.decode)
        cells.append((field.key, _leaf_reader(read, *leaf)))
    return cells


def _decoded(read: Reader, decode: Callable[[Any], Any]) -> Reader:
    return lambda row: decode(read(row))


def _identity(value: Any) -> Any:
    return value


def _constant(value: Any) -> Reader:
    return lambda _source: value


def _plain_nodes(field: FieldPlan, *, arguments: bool) -> bool:
    """No node of ``field`` has a directive beyond ``@skip``/``@include`` or, unless
    ``arguments`` allows them, an argument."""
    return not any(
        (node.arguments and not arguments)
        or (node.directives and _has_non_skip_directive(node.directives))
        for node in field.nodes
    )


#: How the database writes each leaf type (``queries.fetch_operation_pages_json``).
_JSON_KINDS = {"String": "string", "ID": "string", "Boolean": "boolean", "Int": "int"}
_JSON_KINDS |= {"Float": "float", "DateTime": "datetime"}


def json_page_fields(field: FieldPlan) -> tuple[JsonField, ...] | None:
    """For a field whose value is a page of objects made from rows (``ROWS``) and whose
    selection is that list alone: the fields of its objects as the database can write
    them, or None when some field needs Python."""
    memo = field.memo
    if "json_page_fields" not in memo:
        memo["json_page_fields"] = _json_page_fields(field)
    found: tuple[JsonField, ...] | None = memo["json_page_fields"]
    return found


def _json_page_fields(field: FieldPlan) -> tuple[JsonField, ...] | None:
    page = field.children
    if page is None:
        return None
    lists = [f for f in page.fields if f.name != "__typename"]
    if (
        len(lists) != 1
        or not lists[0].metadata.get(ROWS)
        or not _plain_nodes(lists[0], arguments=False)
    ):
        return None
    items = lists[0].children
    if items is None or _row_cells(items, None) is None:
        return None
    fields: list[JsonField] = []
    for item in items.fields:
        if item.name == "__typename":
            fields.append((item.key, None, item.parent.name))
            continue
        assert item.definition is not None  # _row_cells checked it
        leaf = _leaf_of(item.definition.type)
        kind = _JSON_KINDS.get(leaf[0].name) if leaf is not None else None
        declared: Any = item.definition.extensions.get("strawberry-definition")
        column = declared.metadata[COLUMN]
        if kind is None or column.decode not in (None, bool):
            return None
        fields.append((item.key, column.name or declared.python_name, kind))
    return tuple(fields)
