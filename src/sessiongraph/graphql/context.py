"""The per-operation context every resolver sees."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TypeAlias

import strawberry
from sqlalchemy.ext.asyncio import AsyncEngine

from sessiongraph.auth import Access
from sessiongraph.config import Settings
from sessiongraph.events import Broker
from sessiongraph.graphql.cursors import CursorCodec
from sessiongraph.graphql.loaders import Loaders


@dataclass
class Caller:
    """Who is asking; shared by the operations of one WebSocket connection, whose
    token may arrive after the connection opened (with connection_init)."""

    access: Access | None
    #: The payload of the WebSocket's connection_init.
    connection_params: dict[str, object] | None = None


@dataclass
class Context:
    engine: AsyncEngine
    settings: Settings
    cursors: CursorCodec
    events: Broker
    caller: Caller
    #: The compiled path executes this operation with its plan (see execution.py).
    compiled: bool = False
    #: Made when first read: most requests of a few fields load nothing.
    _loaders: Loaders | None = field(default=None, repr=False)

    @classmethod
    def create(
        cls,
        engine: AsyncEngine,
        settings: Settings,
        cursors: CursorCodec,
        events: Broker,
        access: Access | None,
    ) -> Context:
        return cls(
            engine=engine, settings=settings, cursors=cursors, events=events, caller=Caller(access)
        )

    @property
    def loaders(self) -> Loaders:
        """The loaders of this operation (its own caches)."""
        if self._loaders is None:
            self._loaders = Loaders(self.engine)
        return self._loaders

    @property
    def read_only(self) -> bool:
        return self.caller.access is not Access.READ_WRITE

    # Strawberry stores connection_init's payload here, on whichever fork it holds.
    @property
    def connection_params(self) -> dict[str, object] | None:
        return self.caller.connection_params

    @connection_params.setter
    def connection_params(self, value: dict[str, object] | None) -> None:
        self.caller.connection_params = value

    def fork(self) -> Context:
        """A context for another operation on the same connection: nothing cached is shared."""
        return replace(self, _loaders=None, compiled=False)

    def renew_loaders(self) -> None:
        """Forget what the loaders have cached: a subscription's next event reads afresh."""
        self._loaders = None


Info: TypeAlias = strawberry.Info[Context, None]
