"""A compiled path through graphql-core's execution for fields that only read their source.

graphql-core completes every field through several generic calls: build an info
object, call the resolver, complete the value by type. Most fields of a large
response need none of that: ``operationType`` of an Operation is an attribute of the
object, a leaf to serialize. For each selection set (which graphql-core collects once
per request, with fragments, aliases and ``@skip``/``@include`` already applied) this
context builds a plan: for every response key, either a reader that produces the
completed value straight from the source object, or nothing, which leaves the key to
graphql-core. Plans outlive the request: they are kept with the operation (of a
document the parse cache keeps) for the values of the variables ``@skip`` and
``@include`` read, so the next request with the same query plans nothing.

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
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from graphql import (
    GRAPHQL_MAX_INT,
    GRAPHQL_MIN_INT,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLString,
    OperationDefinitionNode,
    Undefined,
    VariableNode,
    Visitor,
    visit,
)
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.fields.resolver import SELF_PARAMSPEC

Reader = Callable[[Any], Any]
Plan = list[tuple[str, "Reader | None"]]
#: A selection set by what graphql-core collected for it: the parent type, and for
#: each response key the field nodes (by identity: they belong to a kept document).
Signature = tuple[GraphQLObjectType, tuple[tuple[str, tuple[int, ...]], ...]]

#: Variants of one operation's plans kept (one per set of ``@skip``/``@include`` values).
VARIANTS_PER_OPERATION = 16


class GiveUp(Exception):
    """The fast path cannot complete this value; graphql-core will.

    Raised new each time: one shared instance would keep its last traceback, and the
    request's objects with it, alive.
    """


class CompiledExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = getattr(self.context_value, "settings", None)
        enabled = settings is None or settings.compiled_execution
        # Middleware wraps every resolver: then only graphql-core knows what a field does.
        wrapped = getattr(self.middleware_manager, "_middleware_resolvers", None)
        self._compiled = enabled and not wrapped
        #: id(grouped field set) -> (the set, kept alive so the id stays its own; its plan)
        self._plans: dict[int, tuple[Any, Plan]] = {}
        #: this operation's plans from earlier requests (and for later ones), if kept
        self._kept: dict[Signature, Plan] | None = None
        if self._compiled:
            self._kept = _kept_plans(
                self.operation, self.fragment_definitions.values(), self.variable_values.coerced
            )

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
        if not self._compiled:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        plan = self._plan(parent_type, grouped_field_set)
        results: dict[str, Any] = {}
        slow: dict[str, Any] = {}
        for key, reader in plan:
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

    def _plan(self, parent_type: GraphQLObjectType, grouped_field_set: Any) -> Plan:
        cached = self._plans.get(id(grouped_field_set))
        if cached is not None:
            return cached[1]
        kept = self._kept
        signature = None if kept is None else _signature(parent_type, grouped_field_set)
        plan = None if kept is None or signature is None else kept.get(signature)
        if plan is None:
            plan = [
                (key, self._reader(parent_type, details))
                for key, details in grouped_field_set.items()
            ]
            if kept is not None and signature is not None:
                kept[signature] = plan
        self._plans[id(grouped_field_set)] = (grouped_field_set, plan)
        return plan

    def _reader(self, parent_type: GraphQLObjectType, details: Any) -> Reader | None:
        """How to complete this field from its source alone, or None."""
        node = details[0].node
        name = node.name.value
        if name == "__typename":
            type_name = parent_type.name
            return lambda _source: type_name
        if node.arguments or (node.directives and _has_non_skip_directive(node.directives)):
            return None
        field = parent_type.fields.get(name)
        if field is None or field.args:
            return None
        read = _source_reader(field)
        if read is None:
            return None
        leaf = _leaf_of(field.type)
        if leaf is not None:
            return _leaf_reader(read, *leaf)
        complete = self._completer(field.type, details)
        if complete is None:
            return None
        return lambda source: complete(read(source))

    def _completer(self, type_: GraphQLOutputType, details: Any) -> Reader | None:
        """Completes a value of ``type_`` as graphql-core would, or gives up."""
        leaf = _leaf_of(type_)
        if leaf is not None:
            return _leaf_completer(*leaf)
        if isinstance(type_, GraphQLNonNull):
            inner = self._completer(type_.of_type, details)
            if inner is None:
                return None

            def non_null(value: Any) -> Any:
                if value is None:
                    raise GiveUp
                return inner(value)

            return non_null
        if isinstance(type_, GraphQLList):
            item = self._completer(type_.of_type, details)
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
            try:
                grouped, defer_usages, *_ = self.collect_subfields(type_, details)
            except Exception:  # e.g. `@include(if: null)`: graphql-core reports it, at its
                return None  # path, and only when there is an object to collect for
            if defer_usages:
                return None
            plan = self._plan(type_, grouped)
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


@dataclass(slots=True)
class _OperationPlans:
    switches: tuple[str, ...]
    """The variables ``@skip`` and ``@include`` read, in the operation or its fragments."""
    fragments: tuple[Any, ...]
    """The document's fragments, held so that the ids of their nodes stay theirs."""
    variants: dict[tuple[Any, ...], dict[Signature, Plan]] = field(default_factory=dict)


#: id(operation node) -> its plans; an entry goes when its node is collected.
_kept_by_operation: dict[int, _OperationPlans] = {}


def _kept_plans(
    operation: OperationDefinitionNode, fragments: Iterable[Any], variables: Mapping[str, Any]
) -> dict[Signature, Plan] | None:
    """The plans kept for ``operation`` with these variables' ``@skip``/``@include`` values."""
    kept = _kept_by_operation.get(id(operation))
    if kept is None:
        held = tuple(fragments)
        kept = _OperationPlans(_switches([operation, *held]), held)
        _kept_by_operation[id(operation)] = kept
        weakref.finalize(operation, _kept_by_operation.pop, id(operation), None)
    values = tuple(variables.get(name) for name in kept.switches)
    try:
        variant = kept.variants.get(values)
    except TypeError:  # not hashable: a value no boolean switch takes
        return None
    if variant is None:
        if len(kept.variants) >= VARIANTS_PER_OPERATION:
            return None
        variant = kept.variants[values] = {}
    return variant


class _SwitchVariables(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def enter_directive(self, node: Any, *_args: Any) -> None:
        if node.name.value in ("skip", "include"):
            for argument in node.arguments:
                if isinstance(argument.value, VariableNode):
                    self.names.add(argument.value.name.value)


def _switches(definitions: Iterable[Any]) -> tuple[str, ...]:
    visitor = _SwitchVariables()
    for definition in definitions:
        visit(definition, visitor)
    return tuple(sorted(visitor.names))


def _signature(parent_type: GraphQLObjectType, grouped_field_set: Any) -> Signature | None:
    """The selection set's identity across requests, or None if it has none."""
    fields = []
    for key, details in grouped_field_set.items():
        if any(d.fragment_variable_values is not None for d in details):
            return None  # fragment arguments: values of this request
        fields.append((key, tuple(id(d.node) for d in details)))
    return parent_type, tuple(fields)


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


def _source_reader(field: Any) -> Reader | None:
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
    """A loader-backed field whose value was read ahead for the whole page (a
    ``_prefetched`` mapping on the object); without it, graphql-core runs the resolver."""

    def read(source: Any) -> Any:
        values = getattr(source, "_prefetched", None)
        if not values or name not in values:
            raise GiveUp
        return values[name]

    return read
