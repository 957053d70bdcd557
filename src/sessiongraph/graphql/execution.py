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

import dataclasses
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
from strawberry.types.cast import get_strawberry_type_cast
from strawberry.types.fields.resolver import SELF_PARAMSPEC

from sessiongraph.db.queries import JsonField
from sessiongraph.graphql.context import Context
from sessiongraph.graphql.fields import (
    CELL,
    COLUMN,
    JSON_OF_ROWS,
    PREFETCHED,
    PREFETCHED_BY_PLAN,
    ROWS,
    Cell,
    Column,
)
from sessiongraph.graphql.plan import FieldPlan, SelectionPlan, Signature, plan_operation
from sessiongraph.stored import saturated_int

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
    if isinstance(type_, GraphQLObjectType):
        cls = _plain_class(type_)
        children = field.selections.get(type_.name)
        if cls is None or children is None:
            return None
        plan = readers_of(children)
        if any(reader is None for _, reader in plan):
            return None  # graphql-core completes it, with this plan for its plain keys
        readers = [(key, reader) for key, reader in plan if reader is not None]
        if cls is not object:

            def tested(value: Any) -> Any:
                if value is None:
                    return None
                if type(value) is not cls or get_strawberry_type_cast(value) is not None:
                    raise GiveUp  # graphql-core's is_type_of says what it is
                return {key: reader(value) for key, reader in readers}

            return tested

        def obj(value: Any) -> Any:
            if value is None:
                return None
            if value is Undefined or isinstance(value, Exception):
                raise GiveUp
            return {key: reader(value) for key, reader in readers}

        return obj
    return None


def _plain_class(type_: GraphQLObjectType) -> type | None:
    """The class of the values graphql-core completes as ``type_`` that the fast path
    may complete too: ``object`` (any) when graphql-core asks nothing (no
    ``is_type_of``); the type's own class when the test is the one strawberry makes for
    a type implementing an interface (an instance of it, not cast to another type:
    compat checks that this is what it does), which its own instances pass; None for
    any other test, which only graphql-core runs."""
    if type_.is_type_of is None:
        return object
    declared: Any = type_.extensions.get("strawberry-definition")
    if (
        declared is None
        or declared.is_type_of is not None
        or declared.concrete_of is not None
        or not declared.interfaces
    ):
        return None
    origin: type = declared.origin
    return origin


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


@dataclasses.dataclass(frozen=True, slots=True)
class _Cell:
    """What a response key of an object made from a row holds: the type name
    (``__typename``), or a value computed from columns (``compute`` of them, or the one
    column as read), completed as its type says."""

    key: str
    columns: tuple[str, ...] = ()
    compute: Callable[..., Any] | None = None
    leaf: tuple[LeafType, bool] | None = None
    complete: Reader | None = None
    type_name: str | None = None


def _rows_reader(field: FieldPlan, attribute: str) -> Reader | None:
    """Completes a list of objects made one per row (``ROWS``) from the rows themselves,
    when each selected field is a column or computed from columns: no object per row,
    one call per row (``_row_function``). None when some field needs the object."""
    named = field.definition.type if field.definition is not None else None
    while isinstance(named, GraphQLNonNull | GraphQLList):
        named = named.of_type
    # Rows make objects of the type's own class (``ROWS``), which its test passes.
    if not isinstance(named, GraphQLObjectType) or _plain_class(named) is None:
        return None
    selection = field.selections.get(named.name)
    cells = None if selection is None else _row_cells(selection)
    if cells is None:
        return None
    #: per projection (the rows' columns): what makes an object of a row
    by_columns: dict[tuple[str, ...], Reader] = {}

    def read(source: Any) -> Any:
        built = getattr(source, JSON_OF_ROWS, None)
        if built is not None:
            return orjson.Fragment(built)
        rows = getattr(source, attribute)
        if not rows:
            return []
        columns = rows[0]._fields
        make = by_columns.get(columns)
        if make is None:
            if any(name not in columns for cell in cells for name in cell.columns):
                raise GiveUp  # a column the projection did not read: the objects know
            make = by_columns[columns] = _row_function(cells, columns)
        return [make(row) for row in rows]

    return read


def _row_cells(selection: SelectionPlan) -> list[_Cell] | None:
    """Per field of ``selection``, its cell; None unless every field has one: a column
    read as is (``COLUMN``, decoded as the object would decode it), or a value computed
    from columns alone (``CELL``)."""
    cells: list[_Cell] = []
    for field in selection.fields:
        if field.name == "__typename":
            cells.append(_Cell(field.key, type_name=field.parent.name))
            continue
        definition = field.definition
        if definition is None or definition.args or not _plain_nodes(field, arguments=False):
            return None
        declared: Any = definition.extensions.get("strawberry-definition")
        if declared is None:
            return None
        computed: Cell | None = declared.metadata.get(CELL)
        column: Column | None = declared.metadata.get(COLUMN)
        compute: Callable[..., Any] | None
        if computed is not None:
            names, compute = computed.columns, computed.compute
        elif column is not None and declared.base_resolver is None:
            names, compute = (column.name or declared.python_name,), column.decode
        else:
            return None
        leaf = _leaf_of(definition.type)
        complete = _completer(definition.type, field)
        if complete is None:
            return None
        cells.append(_Cell(field.key, names, compute, leaf, complete))
    return cells


#: For leaf types whose values of one Python type serialize as themselves: the test
#: that passes such a value ``v`` through (anything else is completed the general way),
#: ``{v}`` where it is first read.
_PASSES: dict[LeafType, str] = {
    GraphQLString: "type({v}) is str",
    GraphQLID: "type({v}) is str",
    GraphQLBoolean: "type({v}) is bool",
    GraphQLInt: f"type({{v}}) is int and {GRAPHQL_MIN_INT} <= v <= {GRAPHQL_MAX_INT}",
    GraphQLFloat: "type({v}) is float and isfinite(v)",
}


def _row_function(cells: list[_Cell], columns: tuple[str, ...]) -> Reader:
    """One function that makes the response object of a row of ``columns``: a dict
    display with an expression per key, compiled once per selection and projection
    (as ``dataclasses`` compiles an ``__init__``). Each value passes one inline type
    test or goes through its completer, which gives up on anything not plainly valid,
    as the readers do: then graphql-core completes the list from the objects."""
    scope: dict[str, Any] = {"isfinite": math.isfinite}
    items = []
    for index, cell in enumerate(cells):
        if cell.type_name is not None:
            items.append(f"{cell.key!r}: {cell.type_name!r}")
            continue
        arguments = ", ".join(f"row[{columns.index(name)}]" for name in cell.columns)
        value = arguments
        if cell.compute is not None:
            scope[f"compute{index}"] = cell.compute
            value = f"compute{index}({arguments})"
        scope[f"complete{index}"] = cell.complete
        passes = _PASSES.get(cell.leaf[0]) if cell.leaf is not None else None
        if passes is None:
            items.append(f"{cell.key!r}: complete{index}({value})")
            continue
        if cell.leaf is not None and cell.leaf[1]:  # nullable
            passes = "{v} is None or (" + passes.replace("{v}", "v") + ")"
        test = passes.format(v=f"(v := {value})")
        items.append(f"{cell.key!r}: (v if {test} else complete{index}(v))")
    source = "def make(row):\n    return {" + ", ".join(items) + "}\n"
    exec(compile(source, "<row of " + ",".join(c.key for c in cells) + ">", "exec"), scope)
    make: Reader = scope["make"]
    return make


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
    if items is None or _row_cells(items) is None:
        return None
    fields: list[JsonField] = []
    for item in items.fields:
        if item.name == "__typename":
            fields.append((item.key, None, item.parent.name))
            continue
        assert item.definition is not None  # _row_cells checked it
        declared: Any = item.definition.extensions.get("strawberry-definition")
        computed: Cell | None = declared.metadata.get(CELL)
        if computed is not None:  # written by the database, if it says how
            if computed.json is None or len(computed.columns) != 1:
                return None
            fields.append((item.key, computed.columns[0], computed.json))
            continue
        leaf = _leaf_of(item.definition.type)
        kind = _JSON_KINDS.get(leaf[0].name) if leaf is not None else None
        column = declared.metadata.get(COLUMN)
        if kind == "int" and column.decode is saturated_int:
            kind = "saturated_int"  # which the database writes saturated too
        elif kind is None or column.decode not in (None, bool):
            return None
        fields.append((item.key, column.name or declared.python_name, kind))
    return tuple(fields)
