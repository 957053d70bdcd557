"""Selection → plan: which optional operation columns a query needs.

A pure function of the GraphQL document, so fragments, inline fragments and
aliases count like plain fields. The plan is a frozenset of column names,
mergeable with ``|``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from graphql import FieldNode, FragmentDefinitionNode, FragmentSpreadNode, InlineFragmentNode
from graphql.language import SelectionNode

#: Operation fields that need a column the light projection leaves out.
OPERATION_FIELD_COLUMNS = {
    "toolInput": "tool_input",
    "toolOutput": "tool_output",
    "messageContent": "message_content",
    "thinkingContent": "thinking_content",
    "git": "git",
    "gitSha": "git",
    "gitMessage": "git",
    "gitBranch": "git",
    "gitRepo": "git",
}

OperationColumns = frozenset[str]


def operation_columns(
    connection_fields: Iterable[FieldNode], fragments: dict[str, FragmentDefinitionNode]
) -> OperationColumns:
    """The optional columns needed by an ``operations`` connection field's selection."""
    columns: set[str] = set()
    for field in _fields(_children(connection_fields), fragments):
        if field.name.value == "nodes":
            columns |= _node_columns([field], fragments)
        elif field.name.value == "edges":
            edges = _fields(_children([field]), fragments)
            columns |= _node_columns([e for e in edges if e.name.value == "node"], fragments)
    return frozenset(columns)


def operation_list_columns(
    parent_fields: Iterable[FieldNode],
    fragments: dict[str, FragmentDefinitionNode],
    list_field: str,
) -> OperationColumns:
    """The optional columns needed by a parent's ``list_field: [Operation!]!`` selection."""
    lists = [f for f in _fields(_children(parent_fields), fragments) if f.name.value == list_field]
    return frozenset(_node_columns(lists, fragments))


def _node_columns(
    node_fields: Iterable[FieldNode], fragments: dict[str, FragmentDefinitionNode]
) -> set[str]:
    return {
        OPERATION_FIELD_COLUMNS[field.name.value]
        for field in _fields(_children(node_fields), fragments)
        if field.name.value in OPERATION_FIELD_COLUMNS
    }


def _children(fields: Iterable[FieldNode]) -> Iterator[SelectionNode]:
    for field in fields:
        if field.selection_set is not None:
            yield from field.selection_set.selections


def _fields(
    selections: Iterable[SelectionNode],
    fragments: dict[str, FragmentDefinitionNode],
    expanded: set[str] | None = None,
) -> Iterator[FieldNode]:
    """Fields of a selection set with fragments expanded, each fragment once: spreading
    it again adds no field, and a fragment spreading another many times over many
    levels would otherwise take exponential time."""
    expanded = set() if expanded is None else expanded
    for selection in selections:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _fields(selection.selection_set.selections, fragments, expanded)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in expanded:
                expanded.add(name)
                yield from _fields(fragment.selection_set.selections, fragments, expanded)


def node_field_names(
    connection_fields: Iterable[FieldNode], fragments: dict[str, FragmentDefinitionNode]
) -> set[str]:
    """Names of the fields selected on a connection's ``nodes`` and ``edges { node }``."""
    nodes: list[FieldNode] = []
    for field in _fields(_children(connection_fields), fragments):
        if field.name.value == "nodes":
            nodes.append(field)
        elif field.name.value == "edges":
            edges = _fields(_children([field]), fragments)
            nodes.extend(e for e in edges if e.name.value == "node")
    return field_names(nodes, fragments)


def field_names(
    fields: Iterable[FieldNode], fragments: dict[str, FragmentDefinitionNode]
) -> set[str]:
    """Names of the fields selected on ``fields``."""
    return {field.name.value for field in _fields(_children(fields), fragments)}
