"""Limits checked before any SQL runs: depth, aliases, directives, tokens and a cost budget.

The cost is the number of nodes a query could return, GitHub-style: a connection
asks for ``first`` nodes for each node of its parent, so ``sessions(first: 200)
{ nodes { operations(first: 50) ... } }`` costs 200 + 200 * 50 = 10,200. Every
root field costs at least one node. Introspection (``__schema``, ``__type``) is
not counted: GraphiQL's own query is deep but cheap.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    NamedTypeNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    visit,
)
from graphql.execution.values import get_variable_values
from graphql.language import Visitor
from graphql.validation.rules.custom.no_schema_introspection import (
    NoSchemaIntrospectionCustomRule,
)
from strawberry.extensions import SchemaExtension

from sessiongraph.config import Settings
from sessiongraph.errors import ErrorCode
from sessiongraph.graphql.errors import limit_reached

#: Lists of objects without a ``first`` argument, and the most items they can hold.
UNPAGED_LIST_BOUND = 1000
MAX_INT = 2**31 - 1
_INTROSPECTION = frozenset({"__schema", "__type"})


@dataclass
class Measure:
    depth: int = 0
    aliases: int = 0
    directives: int = 0
    cost: int = 0


def measure(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any],
) -> Measure:
    """What ``operation`` of ``document`` asks for (aliases and directives: the whole
    document). ``variables`` are the coerced values, defaults applied."""
    result = Measure()
    counter = _Counter()
    visit(document, counter)
    result.aliases, result.directives = counter.aliases, counter.directives
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    root = schema.get_root_type(operation.operation)
    if root is None:
        return result
    walk = _Walk(schema, fragments, variables)
    result.depth, result.cost = walk.selections(
        operation.selection_set, root, at_root=True, path=frozenset()
    )
    return result


class _Counter(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.aliases = 0
        self.directives = 0

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        if node.alias is not None:
            self.aliases += 1

    def enter_directive(self, _node: DirectiveNode, *_: Any) -> None:
        self.directives += 1


@dataclass
class _Walk:
    """Depth and cost of selection sets, bottom-up: a selection set costs ``cost`` per
    node of its parent and nests ``depth`` fields deep. A fragment is measured once per
    type and place, however often it is spread, so the work stays linear in the
    document (a fragment spreading another four times, ten levels down, is one walk
    of each, not 4**10)."""

    schema: GraphQLSchema
    fragments: dict[str, FragmentDefinitionNode]
    variables: Mapping[str, Any]
    _measured: dict[tuple[str, str, bool], tuple[int, int]] = field(default_factory=dict)

    def selections(
        self,
        selection_set: SelectionSetNode,
        parent: GraphQLObjectType,
        *,
        at_root: bool,
        path: frozenset[str],
    ) -> tuple[int, int]:
        depth = cost = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                inner_depth, inner_cost = self.field(selection, parent, at_root=at_root, path=path)
            elif isinstance(selection, FragmentSpreadNode):
                inner_depth, inner_cost = self.spread(selection, parent, at_root, path)
            else:
                assert isinstance(selection, InlineFragmentNode)
                scope = self._scope(selection.type_condition, parent)
                inner_depth, inner_cost = self.selections(
                    selection.selection_set, scope, at_root=at_root, path=path
                )
            depth, cost = max(depth, inner_depth), cost + inner_cost
        return depth, cost

    def spread(
        self,
        node: FragmentSpreadNode,
        parent: GraphQLObjectType,
        at_root: bool,
        path: frozenset[str],
    ) -> tuple[int, int]:
        name = node.name.value
        fragment = self.fragments.get(name)
        if fragment is None or name in path:  # unknown or cyclic: validation says so
            return 0, 0
        scope = self._scope(fragment.type_condition, parent)
        key = (name, scope.name, at_root)
        known = self._measured.get(key)
        if known is None:
            known = self.selections(
                fragment.selection_set, scope, at_root=at_root, path=path | {name}
            )
            self._measured[key] = known
        return known

    def field(
        self, node: FieldNode, parent: GraphQLObjectType, *, at_root: bool, path: frozenset[str]
    ) -> tuple[int, int]:
        name = node.name.value
        if name in _INTROSPECTION:
            return 0, 0
        definition = parent.fields.get(name)
        if definition is None:
            return 1, 0
        returned = definition.type
        named = get_named_type(returned)
        size = 0
        if named.name.endswith("Connection") and "first" in definition.args:
            size = self._first(node, definition.args["first"].default_value)
        elif name == "operations" and _is_list(returned):  # a batch: at most 1,000
            size = UNPAGED_LIST_BOUND
        # nodes and edges of a connection were counted with it; small value lists
        # (costByModel) and single objects count nothing, except at the root.
        cost = size or (1 if at_root else 0)
        if node.selection_set is None or not isinstance(named, GraphQLObjectType):
            return 1, cost
        inner_depth, inner_cost = self.selections(
            node.selection_set, named, at_root=False, path=path
        )
        return 1 + inner_depth, cost + (size or 1) * inner_cost

    def _scope(
        self, condition: NamedTypeNode | None, parent: GraphQLObjectType
    ) -> GraphQLObjectType:
        if condition is not None:
            named = self.schema.get_type(condition.name.value)
            if isinstance(named, GraphQLObjectType):
                return named
        return parent

    def _first(self, node: FieldNode, default: Any) -> int:
        for argument in node.arguments or ():
            if argument.name.value != "first":
                continue
            value = argument.value
            if isinstance(value, IntValueNode):
                return _count(int(value.value), default)
            if isinstance(value, VariableNode):
                return _count(self.variables.get(value.name.value, default), default)
            return _count(default, default)
        return _count(default, default)


def _count(value: Any, default: Any) -> int:
    """A page size to count: the value when it is a usable one, else the field's default."""
    if type(value) is int and 0 < value <= MAX_INT:  # else coercion reports it
        return value
    return default if type(default) is int and default > 0 else 1


def _is_list(type_: Any) -> bool:
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


@dataclass(frozen=True, slots=True)
class Limits:
    depth: int
    aliases: int
    directives: int
    tokens: int
    cost: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            depth=settings.max_depth,
            aliases=settings.max_aliases,
            directives=settings.max_directives,
            tokens=settings.max_tokens,
            cost=settings.cost_budget,
        )

    def exceeded(self, measured: Measure) -> Iterator[tuple[str, int, int]]:
        """(limit name, maximum, measured) for each limit ``measured`` goes past."""
        for name, maximum, value in (
            ("maxDepth", self.depth, measured.depth),
            ("maxAliases", self.aliases, measured.aliases),
            ("maxDirectives", self.directives, measured.directives),
            ("costBudget", self.cost, measured.cost),
        ):
            if value > maximum:
                yield name, maximum, value


_DESCRIPTIONS = {
    "maxDepth": "is nested {value} fields deep; the limit is {maximum}",
    "maxAliases": "uses {value} aliases; the limit is {maximum}",
    "maxDirectives": "uses {value} directives; the limit is {maximum}",
    "costBudget": "could return {value} nodes, over the budget of {maximum}: "
    "ask for smaller pages (`first`)",
}


def too_complex(limit: str, maximum: int, value: int, what: str = "This query") -> GraphQLError:
    message = f"{what} " + _DESCRIPTIONS.get(limit, "{value} over {maximum}").format(
        value=value, maximum=maximum
    )
    return limit_reached(message, limit=limit, maximum=maximum, requested=value)


class RequestLimits(SchemaExtension):
    """Applies the limits of the request's settings, refuses mutations to read-only
    callers, hides introspection where it is off, and reports the cost it measured.

    The checks run before validation, on every request: they depend on the
    variables and the caller, which a cached validation knows nothing of.
    """

    def __init__(self) -> None:
        self.cost: int | None = None
        self.budget = 0

    def on_operation(self) -> Iterator[None]:
        ctx = self.execution_context
        settings: Settings = ctx.context.settings
        ctx.parse_options = {**ctx.parse_options, "max_tokens": settings.max_tokens}
        if not settings.introspection_enabled:
            ctx.validation_rules = (*ctx.validation_rules, NoSchemaIntrospectionCustomRule)
        yield

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        if ctx.graphql_document is not None and ctx.pre_execution_errors is None:
            errors = self._refusals(ctx.graphql_document)
            if errors:
                ctx.pre_execution_errors = errors
        yield

    def get_results(self) -> dict[str, Any]:
        if self.cost is None or self.execution_context.pre_execution_errors:
            return {}
        return {"cost": {"requestedNodes": self.cost, "budget": self.budget}}

    def _refusals(self, document: DocumentNode) -> list[GraphQLError]:
        ctx = self.execution_context
        operation = _operation(document, ctx.operation_name)
        if operation is None:
            return []  # validation reports a missing or ambiguous operation
        if ctx.context.read_only and operation.operation is OperationType.MUTATION:
            return [
                GraphQLError(
                    "This token may only read: mutations need a read-write token",
                    extensions={"code": ErrorCode.FORBIDDEN.value},
                )
            ]
        limits = Limits.from_settings(ctx.context.settings)
        schema = ctx.schema._schema
        measured = measure(schema, document, operation, _coerced(schema, operation, ctx.variables))
        refusals = [too_complex(*over) for over in limits.exceeded(measured)]
        if not refusals:
            self.cost, self.budget = measured.cost, limits.cost
        return refusals


def _coerced(
    schema: GraphQLSchema, operation: OperationDefinitionNode, inputs: Mapping[str, Any] | None
) -> Mapping[str, Any]:
    """The variables as execution will see them: coerced (``1000.0`` is 1000), with their
    defaults; none when they do not coerce (execution then refuses the request)."""
    values = get_variable_values(
        schema, operation.variable_definitions or (), dict(inputs or {}), max_errors=1
    )
    coerced: Mapping[str, Any] = getattr(values, "coerced", None) or {}
    return coerced


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name is not None and o.name.value == name), None)
