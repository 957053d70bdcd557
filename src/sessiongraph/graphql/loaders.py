"""Per-request DataLoaders: each batch is one SQL statement for every key at once."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Row, RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.dataloader import DataLoader

from sessiongraph.db import queries
from sessiongraph.db.queries import Keyset, OperationFilter


@dataclass(frozen=True, slots=True)
class OperationPageKey:
    """One session's page: sessions asking for the same page shape share a statement."""

    session_id: str
    filters: OperationFilter
    after: Keyset | None
    limit: int
    columns: frozenset[str]


class WorkflowByIdLoader(DataLoader[str, RowMapping | None]):
    def __init__(self, engine: AsyncEngine) -> None:
        async def load(ids: list[str]) -> list[RowMapping | None]:
            found = await queries.fetch_workflows(engine=engine, ids=ids)
            return [found.get(i) for i in ids]

        super().__init__(load_fn=load)


class OperationCountBySessionLoader(DataLoader[tuple[str, OperationFilter], int]):
    def __init__(self, engine: AsyncEngine) -> None:
        async def load(keys: list[tuple[str, OperationFilter]]) -> list[int]:
            by_filter: dict[OperationFilter, list[str]] = defaultdict(list)
            for session_id, filters in keys:
                by_filter[filters].append(session_id)
            counts: dict[tuple[str, OperationFilter], int] = {}
            for filters, session_ids in by_filter.items():
                found = await queries.count_operations(
                    engine=engine, session_ids=session_ids, filters=filters
                )
                counts.update({(sid, filters): found.get(sid, 0) for sid in session_ids})
            return [counts[key] for key in keys]

        super().__init__(load_fn=load)


class OperationPageBySessionLoader(DataLoader[OperationPageKey, list[Row[Any]]]):
    def __init__(self, engine: AsyncEngine) -> None:
        async def load(keys: list[OperationPageKey]) -> list[list[Row[Any]]]:
            shapes: dict[tuple[Any, ...], list[str]] = defaultdict(list)
            for key in keys:
                shapes[(key.filters, key.after, key.limit, key.columns)].append(key.session_id)
            pages: dict[OperationPageKey, list[Row[Any]]] = {}
            for (filters, after, limit, columns), session_ids in shapes.items():
                found = await queries.fetch_operation_pages(
                    engine=engine,
                    session_ids=session_ids,
                    filters=filters,
                    after=after,
                    limit=limit,
                    columns=columns,
                )
                for sid in session_ids:
                    pages[OperationPageKey(sid, filters, after, limit, columns)] = found.get(
                        sid, []
                    )
            return [pages[key] for key in keys]

        super().__init__(load_fn=load)


class ToolUsageBySessionLoader(DataLoader[tuple[str, int], list[RowMapping]]):
    """A session's most used tools: keys are (session id, how many)."""

    def __init__(self, engine: AsyncEngine) -> None:
        async def load(keys: list[tuple[str, int]]) -> list[list[RowMapping]]:
            by_first: dict[int, list[str]] = defaultdict(list)
            for session_id, first in keys:
                by_first[first].append(session_id)
            usage: dict[tuple[str, int], list[RowMapping]] = {}
            for first, session_ids in by_first.items():
                found = await queries.fetch_tool_usage(
                    engine=engine, session_ids=session_ids, first=first
                )
                usage.update({(sid, first): found.get(sid, []) for sid in session_ids})
            return [usage[key] for key in keys]

        super().__init__(load_fn=load)


class Loaders:
    """The loaders of one request; never shared between requests."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.workflow_by_id = WorkflowByIdLoader(engine)
        self.operation_count_by_session = OperationCountBySessionLoader(engine)
        self.operation_page_by_session = OperationPageBySessionLoader(engine)
        self.tool_usage_by_session = ToolUsageBySessionLoader(engine)
