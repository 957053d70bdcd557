"""Persisted queries: Apollo's automatic protocol, and an optional allow-list.

Automatic: a client sends ``extensions.persistedQuery.sha256Hash`` alone; an unknown
hash gets ``PersistedQueryNotFound``, and the client sends the query with its hash
once, which registers it. The store is bounded (least recently used go first).

Allow-list: with ``persisted_queries_only`` the server runs only the queries of
``persisted_queries_file`` (hash -> query, as client build tools write them), by hash
or by full text, and registers nothing new.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from graphql import GraphQLError

from sessiongraph.config import Settings
from sessiongraph.errors import ErrorCode
from sessiongraph.lru import LRU

NOT_FOUND = "PersistedQueryNotFound"


class PersistedQueryError(Exception):
    def __init__(self, error: GraphQLError) -> None:
        super().__init__(error.message)
        self.error = error


def _error(message: str, code: ErrorCode) -> PersistedQueryError:
    return PersistedQueryError(GraphQLError(message, extensions={"code": code.value}))


def sha256(query: str) -> str:
    return hashlib.sha256(query.encode("utf-8")).hexdigest()


def load_manifest(path: Path) -> dict[str, str]:
    """hash -> query from a JSON object; every hash must be its query's."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ValueError(f"{path}: expected a JSON object of sha256 hash -> query text")
    for digest, query in data.items():
        if sha256(query) != digest.lower():
            raise ValueError(f"{path}: {digest} is not the SHA-256 of its query")
    return {k.lower(): v for k, v in data.items()}


class PersistedQueries:
    def __init__(self, settings: Settings) -> None:
        self.automatic = settings.persisted_queries
        self.only_registered = settings.persisted_queries_only
        self.registered: dict[str, str] = (
            load_manifest(settings.persisted_queries_file)
            if settings.persisted_queries_file is not None
            else {}
        )
        #: What clients registered (automatic persisted queries): hash -> query.
        self._store: LRU[str, str] = LRU(settings.persisted_query_store_size)

    def __len__(self) -> int:
        return len(self._store)

    def resolve(self, query: str | None, extensions: dict[str, Any] | None) -> str | None:
        """The query to run; raises ``PersistedQueryError`` for the client."""
        persisted = (extensions or {}).get("persistedQuery")
        if persisted is None:
            if self.only_registered and (query is None or sha256(query) not in self.registered):
                raise _error(
                    "This server runs only registered queries: send a persisted query hash",
                    ErrorCode.FORBIDDEN,
                )
            return query
        if not (self.automatic or self.only_registered):
            raise _error("PersistedQueryNotSupported", ErrorCode.BAD_USER_INPUT)
        digest = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
        if (
            not isinstance(persisted, dict)
            or persisted.get("version") != 1
            or not isinstance(digest, str)
            or len(digest) != 64
        ):
            raise _error(
                "`extensions.persistedQuery` must be {version: 1, sha256Hash: <64 hex digits>}",
                ErrorCode.BAD_USER_INPUT,
            )
        digest = digest.lower()
        if query is None:
            # With only registered queries allowed, nothing is ever put in the store.
            known = self.registered.get(digest) or self._store.get(digest)
            if known is None:
                raise _error(NOT_FOUND, ErrorCode.PERSISTED_QUERY_NOT_FOUND)
            return known
        if sha256(query) != digest:
            raise _error("provided sha does not match query", ErrorCode.BAD_USER_INPUT)
        if self.only_registered:
            if digest not in self.registered:
                raise _error("This query is not registered on this server", ErrorCode.FORBIDDEN)
        elif digest not in self.registered:
            self._store.put(digest, query)
        return query
