"""Parsed and validated documents, kept for the next request with the same text.

Clients send the same few queries over and over; parsing and validating one again
costs as much as a small response. Both caches are bounded (least recently used go
first) and keyed by everything that changes the outcome: the text and the token
limit for parsing; validation is kept per schema, whose rules decide it. The
limits that depend on variables or on the caller are checked on every request
(``limits.admit``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from graphql import DocumentNode, GraphQLError, OperationDefinitionNode, parse
from strawberry.extensions import SchemaExtension

from sessiongraph.lru import LRU

CACHE_SIZE = 1000

_parsed: LRU[tuple[str, int | None], DocumentNode] = LRU(CACHE_SIZE)


def parsed(query: str, max_tokens: int | None) -> DocumentNode:
    """The document of ``query``, parsed once; raises ``GraphQLError`` like ``parse``."""
    key = (query, max_tokens)
    document = _parsed.get(key)
    if document is None:
        document = parse(query, max_tokens=max_tokens)
        _parsed.put(key, document)
    return document


def operation_to_run(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    """The operation Strawberry runs: the one named, or without a name the first (where
    plain graphql-core would refuse a document of several)."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if operations else None
    return next((o for o in operations if o.name is not None and o.name.value == name), None)


Validated = LRU[str, list[GraphQLError]]


def known_errors(store: Validated, query: str) -> list[GraphQLError] | None:
    """What validation said of ``query``, if ``store`` (the schema's) keeps it; the list
    is the caller's own."""
    known = store.get(query)
    return None if known is None else list(known)


def keep_errors(store: Validated, query: str, errors: list[GraphQLError]) -> None:
    store.put(query, list(errors))


def validation(
    store: Validated, query: str, validate: Callable[[], list[GraphQLError]]
) -> list[GraphQLError]:
    """What validation says of ``query``: kept, or ``validate``d now and kept."""
    errors = known_errors(store, query)
    if errors is None:
        errors = validate()
        keep_errors(store, query, errors)
    return errors


class DocumentCache(SchemaExtension):
    """Parses through the shared parse cache, and validates through the schema's own
    cache (``store``): what validation says depends on the schema and its rules."""

    @staticmethod
    def store() -> Validated:
        return LRU(CACHE_SIZE)

    def on_parse(self) -> Iterator[None]:
        ctx = self.execution_context
        query = ctx.query
        if query is None or ctx.graphql_document is not None:
            yield
            return
        with contextlib.suppress(GraphQLError):  # Strawberry reports a failure itself
            ctx.graphql_document = parsed(query, ctx.parse_options.get("max_tokens"))
        yield

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        if ctx.pre_execution_errors is not None or ctx.query is None:
            yield  # refused already (a limit), or nothing to key on
            return
        store: Validated = ctx.schema.validated  # type: ignore[attr-defined]
        known = known_errors(store, ctx.query)
        if known is not None:
            ctx.pre_execution_errors = known  # Strawberry validates no more
            yield
            return
        yield
        if ctx.pre_execution_errors is not None:
            keep_errors(store, ctx.query, ctx.pre_execution_errors)
