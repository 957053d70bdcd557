"""Helpers for the arguments resolvers receive."""

from __future__ import annotations

from typing import TypeVar

from strawberry import UNSET

from sessiongraph.errors import BadUserInput

T = TypeVar("T")


def given(value: T | None) -> T | None:
    """``None`` for an argument the client left out (Strawberry passes ``UNSET``)."""
    return None if value is UNSET else value


def check_first(first: int | None, *, default: int, maximum: int) -> int:
    """The page size; ``BadUserInput`` outside ``1..maximum`` (null means the default)."""
    if first is None:
        return default
    if not 1 <= first <= maximum:
        raise BadUserInput(
            f"`first` must be between 1 and {maximum}, got {first}", argumentName="first"
        )
    return first
