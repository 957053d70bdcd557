"""Relay-style pages: PageInfo, what makes a type a connection, and the one builder of a page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import strawberry
from graphql import GraphQLNamedType
from sqlalchemy.engine import Row, RowMapping

from sessiongraph.graphql.cursors import CursorCodec, PageCursors


@strawberry.type(description="A page position, as in the Relay connection specification.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More items follow this page.")
    _cursors: strawberry.Private[PageCursors]

    @strawberry.field(description="Cursor of the last item; pass it as `after` for the next page.")
    def end_cursor(self) -> str | None:
        return self._cursors.last()

    has_previous_page: bool = strawberry.field(
        description="Items precede this page (true when `after` was given)."
    )

    @strawberry.field(description="Cursor of the first item.")
    def start_cursor(self) -> str | None:
        return self._cursors.first()


class Connection:
    """Base of every connection type: its ``first`` argument sizes it for the cost check."""


def is_connection(type_: GraphQLNamedType) -> bool:
    declared: Any = type_.extensions.get("strawberry-definition")
    origin = getattr(declared, "origin", None)
    return isinstance(origin, type) and issubclass(origin, Connection)


R = TypeVar("R", RowMapping, Row[Any])


@dataclass(frozen=True, slots=True)
class Page(Generic[R]):
    """One page of rows read with one more than ``limit``, and where it is."""

    rows: Sequence[R]
    info: PageInfo
    cursors: PageCursors

    @classmethod
    def of(
        cls,
        rows: Sequence[R],
        *,
        limit: int,
        after_given: bool,
        codec: CursorCodec,
        scope: str,
        column: str,
    ) -> Page[R]:
        """``rows`` as read (up to ``limit + 1``, the extra one telling a next page
        exists); cursors hold the sort ``column`` and the id, for ``scope``."""
        page = rows[:limit]
        cursors = PageCursors(codec, scope, column, page)
        info = PageInfo(
            has_next_page=len(rows) > limit, has_previous_page=after_given, _cursors=cursors
        )
        return cls(page, info, cursors)
