"""Limits checked before any SQL runs: depth, aliases, directives, tokens and a cost budget.

The cost is the number of nodes a query could return, GitHub-style: a connection
asks for ``first`` nodes for each node of its parent, so ``sessions(first: 200)
{ nodes { operations(first: 50) ... } }`` costs 200 + 200 * 50 = 10,200. Every
root field costs at least one node. Introspection (``__schema``, ``__type``) is
not counted: GraphiQL's own query is deep but cheap. Depth and cost are read from
the operation's plan (``plan.py``): what execution would collect, fragments and
``@skip``/``@include`` applied, each response key once.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    get_named_type,
    visit,
)
from graphql.execution.values import get_variable_values
from graphql.language import Visitor
from strawberry.extensions import SchemaExtension

from sessiongraph.config import Settings
from sessiongraph.errors import ErrorCode
from sessiongraph.graphql.documents import operation_to_run
from sessiongraph.graphql.errors import limit_reached
from sessiongraph.graphql.fields import LEAST_COST, MAX_ITEMS, SIZE
from sessiongraph.graphql.plan import FieldPlan, OperationPlan, SelectionPlan, plan_operation
from sessiongraph.graphql.types.pagination import is_connection

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
    facts = _facts(document)
    result.aliases, result.directives = facts.aliases, facts.directives
    plan = plan_operation(schema, operation, facts.fragments, variables)
    result.depth, result.cost = _cost(plan, variables)
    return result


def fragments_of(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


@dataclass(frozen=True, slots=True)
class _Facts:
    """What the limits read of a whole document, the same on every request."""

    aliases: int
    directives: int
    fragments: dict[str, FragmentDefinitionNode]


#: The facts of documents in use, by id(document): an entry goes with its document
#: (the parse cache keeps the documents of repeated queries).
_known: dict[int, _Facts] = {}


def _facts(document: DocumentNode) -> _Facts:
    facts = _known.get(id(document))
    if facts is None:
        counter = _Counter()
        visit(document, counter)
        facts = _Facts(counter.aliases, counter.directives, fragments_of(document))
        _known[id(document)] = facts
        weakref.finalize(document, _known.pop, id(document), None)
    return facts


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


#: Keys of what the limits keep with a plan (``memo``): an operation's depth and cost
#: without variables, and a field's page size, or how to read it.
_COST = "limits.cost"
_SIZE = "limits.size"


def _cost(plan: OperationPlan, variables: Mapping[str, Any]) -> tuple[int, int]:
    if plan.root is None:
        return 0, 0
    if variables:
        return _Cost(variables).selection(plan.root, at_root=True)
    # Without variables, the same plan always measures the same: measured once.
    known: tuple[int, int] | None = plan.root.memo.get(_COST)
    if known is None:
        known = plan.root.memo[_COST] = _Cost(variables).selection(plan.root, at_root=True)
    return known


@dataclass
class _Cost:
    """Depth and cost of selections, bottom-up: a selection costs ``cost`` per node of
    its parent and nests ``depth`` fields deep. A selection shared by several places
    (a fragment's) is measured once."""

    variables: Mapping[str, Any]
    _measured: dict[tuple[int, bool], tuple[int, int]] = field(default_factory=dict)

    def selection(self, selection: SelectionPlan, *, at_root: bool) -> tuple[int, int]:
        key = (id(selection), at_root)
        known = self._measured.get(key)
        if known is None:
            self._measured[key] = (0, 0)  # a cycle (refused by validation) adds nothing
            depth = cost = 0
            for child in selection.fields:
                inner_depth, inner_cost = self.field(child, at_root=at_root)
                depth, cost = max(depth, inner_depth), cost + inner_cost
            known = self._measured[key] = (depth, cost)
        return known

    def field(self, field: FieldPlan, *, at_root: bool) -> tuple[int, int]:
        if field.name in _INTROSPECTION:
            return 0, 0
        if field.definition is None:
            return 1, 0
        size = self._size(field)
        # nodes and edges of a connection were counted with it; small value lists
        # (costByModel) and single objects count nothing, except at the root.
        cost = size or (1 if at_root else 0)
        least = field.metadata.get(LEAST_COST, 0)
        if not field.selections:
            return 1, max(cost, least)
        measured = [self.selection(s, at_root=False) for s in field.selections.values()]
        inner_depth = max(depth for depth, _ in measured)
        inner_cost = max(cost for _, cost in measured)  # the value is one of the types
        return 1 + inner_depth, max(cost + (size or 1) * inner_cost, least)

    def _size(self, field: FieldPlan) -> int:
        """How many nodes the field can return: ``first`` of a connection, the declared
        bound of a list; 0 for anything else."""
        size = field.memo.get(_SIZE)
        if size is None:
            size = field.memo[_SIZE] = _size_of(field)
        if isinstance(size, _First):
            return _count(field.argument("first", self.variables), size.default)
        if isinstance(size, _Sized):
            return max(0, min(size.of(lambda name: field.argument(name, self.variables)), MAX_INT))
        return int(size)


@dataclass(frozen=True, slots=True)
class _First:
    """The size of a connection: its ``first`` argument (or this default)."""

    default: Any


@dataclass(frozen=True, slots=True)
class _Sized:
    """The size of a list as its field declares it (``SIZE``), from its arguments."""

    of: Callable[[Callable[[str], Any]], int]


def _size_of(field: FieldPlan) -> int | _First | _Sized:
    """What the size of ``field`` depends on: its declared ``SIZE``, its ``first``
    argument (a connection's, or a plain list's), or nothing."""
    assert field.definition is not None
    declared = field.metadata.get(SIZE)
    if declared is not None:
        return _Sized(declared)
    named = get_named_type(field.definition.type)
    listed = is_connection(named) or _is_list(field.definition.type)
    if listed and "first" in field.definition.args:
        return _First(field.definition.args["first"].default_value)
    bound = field.metadata.get(MAX_ITEMS)
    if isinstance(bound, int) and _is_list(field.definition.type):
        return bound
    return 0


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


def admit(
    limits: Limits,
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    context: Any,
) -> tuple[list[GraphQLError], int | None]:
    """The refusals of the operation Strawberry runs (``operation_name``, or the first):
    a mutation from a read-only caller, each limit it goes past; with none, the cost
    measured (None when there is no such operation: validation reports it)."""
    operation = operation_to_run(document, operation_name)
    if operation is None:
        return [], None
    if context.read_only and operation.operation is OperationType.MUTATION:
        forbidden = GraphQLError(
            "This token may only read: mutations need a read-write token",
            extensions={"code": ErrorCode.FORBIDDEN.value},
        )
        return [forbidden], None
    measured = measure(schema, document, operation, _coerced(schema, operation, variables))
    refusals = [too_complex(*over) for over in limits.exceeded(measured)]
    return refusals, None if refusals else measured.cost


def requested_nodes(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
) -> int:
    """The cost of the operation Strawberry runs, as ``admit`` measures it (0 when there
    is no such operation)."""
    operation = operation_to_run(document, operation_name)
    if operation is None:
        return 0
    return measure(schema, document, operation, _coerced(schema, operation, variables)).cost


def cost_report(cost: int, limits: Limits) -> dict[str, Any]:
    """The ``extensions`` entry of an admitted operation's result."""
    return {"cost": {"requestedNodes": cost, "budget": limits.cost}}


class RequestLimits(SchemaExtension):
    """Applies the schema's limits (``admit``) and reports the cost it measured.

    The checks run before validation, on every request: they depend on the
    variables and the caller, which a cached validation knows nothing of.
    ``Schema.execute`` does the same itself; Strawberry runs this extension for
    operations over WebSocket.
    """

    def __init__(self) -> None:
        self.cost: int | None = None

    @property
    def limits(self) -> Limits:
        limits: Limits = self.execution_context.schema.limits  # type: ignore[attr-defined]
        return limits

    def on_operation(self) -> Iterator[None]:
        ctx = self.execution_context
        ctx.parse_options = {**ctx.parse_options, "max_tokens": self.limits.tokens}
        yield

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        if ctx.graphql_document is not None and ctx.pre_execution_errors is None:
            errors, self.cost = admit(
                self.limits,
                ctx.schema._schema,
                ctx.graphql_document,
                ctx.operation_name,
                ctx.variables,
                ctx.context,
            )
            if errors:
                ctx.pre_execution_errors = errors
        yield

    def get_results(self) -> dict[str, Any]:
        if self.cost is None or self.execution_context.pre_execution_errors:
            return {}
        return cost_report(self.cost, self.limits)


def _coerced(
    schema: GraphQLSchema, operation: OperationDefinitionNode, inputs: Mapping[str, Any] | None
) -> Mapping[str, Any]:
    """The variables as execution will see them: coerced (``1000.0`` is 1000), with their
    defaults; none when they do not coerce (execution then refuses the request)."""
    if not operation.variable_definitions:
        return {}  # what coercion gives: values of undeclared variables are not read
    values = get_variable_values(
        schema, operation.variable_definitions, dict(inputs or {}), max_errors=1
    )
    coerced: Mapping[str, Any] = getattr(values, "coerced", None) or {}
    return coerced
