"""The per-request context every resolver sees."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

import strawberry
from sqlalchemy.ext.asyncio import AsyncEngine

from sessiongraph.config import Settings
from sessiongraph.graphql.cursors import CursorCodec
from sessiongraph.graphql.loaders import Loaders
from sessiongraph.graphql.selection import OperationColumns


@dataclass
class Context:
    engine: AsyncEngine
    settings: Settings
    cursors: CursorCodec
    loaders: Loaders
    #: Column plans already computed, by the ``operations`` field node they came from.
    operation_columns: dict[int, OperationColumns] = field(default_factory=dict)

    @classmethod
    def create(cls, engine: AsyncEngine, settings: Settings, cursors: CursorCodec) -> Context:
        return cls(engine=engine, settings=settings, cursors=cursors, loaders=Loaders(engine))


Info: TypeAlias = strawberry.Info[Context, None]
