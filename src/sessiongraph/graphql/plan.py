"""One walk of an operation: the plan that the limits, the column projection, page
prefetching and the compiled executor all read.

graphql-core collects the fields of each selection set while it executes. The plan
is that same collection done once, ahead, for the whole operation: fragments and
inline fragments expanded, ``@skip``/``@include`` applied with the request's
variables, fields of one response key merged. Per selection set it holds the
response keys in order; per key, the field's definition, the nodes merged under it
and the selection of its children.

Plans are kept with their operation node (which the parse cache keeps), one per set
of ``@skip``/``@include`` values, and go when the node goes. They are built before
validation, so the walk is total on any document (unknown fields, unknown or
cyclic fragments) and linear in its size: a selection set is planned once per
object type and merged nodes, however often fragments spread it.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    ArgumentNode,
    BooleanValueNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    NamedTypeNode,
    OperationDefinitionNode,
    SelectionNode,
    SelectionSetNode,
    Undefined,
    VariableNode,
    get_named_type,
    is_abstract_type,
    value_from_ast,
)

#: A selection set as graphql-core groups it: the object type's name, and per response
#: key the ids of the field nodes merged under it (nodes of a kept document).
Signature = tuple[str, tuple[tuple[str, tuple[int, ...]], ...]]

#: Plans kept per operation (one per set of ``@skip``/``@include`` values).
VARIANTS_PER_OPERATION = 16

_SWITCHES = ("skip", "include")
#: Directives that change how graphql-core collects or delivers fields.
_INCREMENTAL = frozenset({"defer", "stream"})


@dataclass(eq=False, slots=True)
class FieldPlan:
    """One response key of a selection set."""

    key: str
    name: str
    parent: GraphQLObjectType
    definition: GraphQLField | None
    """None for ``__typename``, introspection, and fields the type does not have."""
    nodes: tuple[FieldNode, ...]
    selections: dict[str, SelectionPlan]
    """The children, per object type the value can be: one for an object field, one
    per possible type for an interface or a union, none for a leaf."""
    memo: dict[str, Any] = field(default_factory=dict)
    """What readers of the plan derive from this field and keep with it."""

    @property
    def children(self) -> SelectionPlan | None:
        """The selection of an object-typed field (None for a leaf or an abstract type)."""
        named = get_named_type(self.definition.type) if self.definition is not None else None
        return self.selections.get(named.name) if isinstance(named, GraphQLObjectType) else None

    @property
    def metadata(self) -> Mapping[str, Any]:
        """What the type declared on this field (``strawberry.field(metadata=...)``)."""
        if self.definition is None:
            return {}
        declared = self.definition.extensions.get("strawberry-definition")
        return getattr(declared, "metadata", None) or {}

    def argument(self, name: str, variables: Mapping[str, Any]) -> Any:
        """The argument ``name`` coerced with ``variables`` (coerced values, defaults
        applied); its default when absent; ``Undefined`` when it does not coerce."""
        if self.definition is None or name not in self.definition.args:
            return Undefined
        argument = self.definition.args[name]
        for node in self.nodes[0].arguments or ():
            if node.name.value == name:
                if isinstance(node.value, VariableNode) and node.value.name.value not in variables:
                    return argument.default_value
                return value_from_ast(node.value, argument.type, dict(variables))
        return argument.default_value

    def arguments(self, variables: Mapping[str, Any]) -> dict[str, Any]:
        """Every argument given or defaulted, coerced (see ``argument``)."""
        if self.definition is None:
            return {}
        values = {name: self.argument(name, variables) for name in self.definition.args}
        return {name: value for name, value in values.items() if value is not Undefined}


@dataclass(eq=False, slots=True)
class SelectionPlan:
    """The merged selection of an object type at one place of the operation."""

    type: GraphQLObjectType
    fields: list[FieldPlan]
    memo: dict[str, Any] = field(default_factory=dict)

    @property
    def signature(self) -> Signature:
        return (
            self.type.name,
            tuple((f.key, tuple(id(node) for node in f.nodes)) for f in self.fields),
        )

    def reachable(self) -> Iterator[SelectionPlan]:
        """This selection and every one below it, each once."""
        seen: set[int] = set()
        pending = [self]
        while pending:
            selection = pending.pop()
            if id(selection) in seen:
                continue
            seen.add(id(selection))
            yield selection
            for child in selection.fields:
                pending.extend(child.selections.values())


@dataclass(eq=False, slots=True)
class OperationPlan:
    root: SelectionPlan | None
    """None when the schema has no root type for the operation."""
    exact: bool
    """graphql-core collects exactly what is planned: no ``@skip``/``@include`` switch
    it would refuse (a null ``if``), no ``@defer``/``@stream``, no fragment arguments,
    no cycle. When false, only the limits may read the plan."""
    _fields: dict[tuple[str, tuple[int, ...]], FieldPlan] = field(default_factory=dict)
    _selections: dict[Signature, SelectionPlan] = field(default_factory=dict)

    def field(self, parent: GraphQLObjectType, nodes: Sequence[FieldNode]) -> FieldPlan | None:
        """The field graphql-core resolves with these merged ``nodes`` on ``parent``."""
        return self._fields.get((parent.name, tuple(id(node) for node in nodes)))

    def selection(self, signature: Signature) -> SelectionPlan | None:
        """The selection graphql-core collected as ``signature``."""
        return self._selections.get(signature)


#: How often an operation was walked; tests read it to prove the walk happens once.
walks = 0


def plan_operation(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
) -> OperationPlan:
    """The plan of ``operation`` with these coerced ``variables``, walked once per
    document and set of switch values."""
    by_operation = _kept.get(schema)
    if by_operation is None:
        by_operation = _kept[schema] = {}
    kept = by_operation.get(id(operation))
    if kept is None:
        held = tuple(fragments.values())
        kept = by_operation[id(operation)] = _Kept(_switches([operation, *held]), held)
        weakref.finalize(operation, by_operation.pop, id(operation), None)
    values = tuple(variables.get(name) for name in kept.switches)
    try:
        plan = kept.variants.get(values)
    except TypeError:  # not hashable: a value no boolean switch takes
        return _walk(schema, operation, fragments, variables)
    if plan is None:
        plan = _walk(schema, operation, fragments, variables)
        if len(kept.variants) < VARIANTS_PER_OPERATION:
            kept.variants[values] = plan
    return plan


@dataclass(slots=True)
class _Kept:
    switches: tuple[str, ...]
    """The variables ``@skip`` and ``@include`` read, in the operation or its fragments."""
    fragments: tuple[FragmentDefinitionNode, ...]
    """The document's fragments, held so that the ids of their nodes stay theirs."""
    variants: dict[tuple[Any, ...], OperationPlan] = field(default_factory=dict)


#: Per schema (plans hold its types), per id(operation node): the plans kept.
_kept: weakref.WeakKeyDictionary[GraphQLSchema, dict[int, _Kept]] = weakref.WeakKeyDictionary()


def _switches(
    definitions: Iterable[OperationDefinitionNode | FragmentDefinitionNode],
) -> tuple[str, ...]:
    names: set[str] = set()
    pending: list[SelectionSetNode] = [d.selection_set for d in definitions]
    while pending:
        for selection in pending.pop().selections:
            for directive in selection.directives or ():
                if directive.name.value in _SWITCHES:
                    for argument in directive.arguments or ():
                        if isinstance(argument.value, VariableNode):
                            names.add(argument.value.name.value)
            inner = getattr(selection, "selection_set", None)
            if inner is not None:
                pending.append(inner)
    return tuple(sorted(names))


def _walk(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
) -> OperationPlan:
    global walks
    walks += 1
    root_type = schema.get_root_type(operation.operation)
    walker = _Walker(schema, fragments, variables)
    if root_type is None:
        return OperationPlan(root=None, exact=False)
    root = walker.selection(root_type, [operation.selection_set])
    plan = OperationPlan(root=root, exact=walker.exact)
    for selection in root.reachable():
        plan._selections[selection.signature] = selection
        for child in selection.fields:
            plan._fields[(selection.type.name, tuple(id(node) for node in child.nodes))] = child
    return plan


class _Walker:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.exact = all(not getattr(f, "variable_definitions", None) for f in fragments.values())
        #: (type name, ids of the selection sets merged) -> their plan
        self._planned: dict[tuple[str, tuple[int, ...]], SelectionPlan] = {}
        self._planning: set[tuple[str, tuple[int, ...]]] = set()

    def selection(
        self, type_: GraphQLObjectType, selection_sets: Sequence[SelectionSetNode]
    ) -> SelectionPlan:
        key = (type_.name, tuple(id(s) for s in selection_sets))
        planned = self._planned.get(key)
        if planned is not None:
            if key in self._planning:  # it contains itself: a cycle validation refuses
                self.exact = False
            return planned
        plan = self._planned[key] = SelectionPlan(type_, [])
        self._planning.add(key)
        grouped: dict[str, list[FieldNode]] = {}
        visited: set[str] = set()
        for selection_set in selection_sets:
            self._collect(type_, selection_set, grouped, visited)
        plan.fields = [self._field(type_, key, nodes) for key, nodes in grouped.items()]
        self._planning.discard(key)
        return plan

    def _field(self, parent: GraphQLObjectType, key: str, nodes: list[FieldNode]) -> FieldPlan:
        name = nodes[0].name.value
        definition = parent.fields.get(name)
        selections: dict[str, SelectionPlan] = {}
        if definition is not None:
            named = get_named_type(definition.type)
            sets = [n.selection_set for n in nodes if n.selection_set is not None]
            if sets and isinstance(named, GraphQLObjectType):
                selections[named.name] = self.selection(named, sets)
            elif sets and is_abstract_type(named):
                for possible in self.schema.get_possible_types(named):
                    selections[possible.name] = self.selection(possible, sets)
        return FieldPlan(key, name, parent, definition, tuple(nodes), selections)

    def _collect(
        self,
        type_: GraphQLObjectType,
        selection_set: SelectionSetNode,
        grouped: dict[str, list[FieldNode]],
        visited: set[str],
    ) -> None:
        """graphql-core's field collection, over the plan's variables."""
        for selection in selection_set.selections:
            if not self._included(selection):
                continue
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                grouped.setdefault(key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                if self._matches(selection.type_condition, type_):
                    self._collect(type_, selection.selection_set, grouped, visited)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is None or not self._matches(fragment.type_condition, type_):
                    continue
                if fragment.name.value in visited:
                    continue
                visited.add(fragment.name.value)
                self._collect(type_, fragment.selection_set, grouped, visited)

    def _included(self, node: SelectionNode) -> bool:
        skip = include = None
        for directive in node.directives or ():
            name = directive.name.value
            if name in _INCREMENTAL:
                self.exact = False
            elif name == "skip" and skip is None:
                skip = self._switch(directive.arguments)
            elif name == "include" and include is None:
                include = self._switch(directive.arguments)
        return skip is not True and include is not False

    def _switch(self, arguments: Iterable[ArgumentNode] | None) -> bool | None:
        """The ``if`` of a switch; None (and an inexact plan) when it is not a boolean:
        graphql-core refuses it where it collects, which only it can say."""
        value: Any = None
        for argument in arguments or ():
            if argument.name.value == "if":
                node = argument.value
                if isinstance(node, BooleanValueNode):
                    value = node.value
                elif isinstance(node, VariableNode):
                    value = self.variables.get(node.name.value)
        if isinstance(value, bool):
            return value
        self.exact = False
        return None

    def _matches(self, condition: NamedTypeNode | None, type_: GraphQLObjectType) -> bool:
        if condition is None:
            return True
        conditional = self.schema.get_type(condition.name.value)
        if conditional is type_:
            return True
        if conditional is not None and is_abstract_type(conditional):
            return self.schema.is_sub_type(conditional, type_)
        return False
