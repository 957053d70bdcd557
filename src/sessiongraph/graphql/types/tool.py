"""ToolUsage: how sessions used one tool."""

from __future__ import annotations

from typing import Self

import strawberry
from sqlalchemy.engine import RowMapping

#: Float aggregates are rounded so that every database gives the same digits.
DURATION_PLACES = 6


@strawberry.type(
    description="The tool calls of one tool: operations of type tool_execution_completed, "
    "tool_execution_failed or tool_blocked that name it."
)
class ToolUsage:
    tool_name: str = strawberry.field(description="The tool, e.g. Bash, Edit.")
    calls: int = strawberry.field(description="Its tool calls.")
    failures: int = strawberry.field(
        description="Calls of type tool_execution_failed or tool_blocked, or with success = false."
    )
    total_duration_seconds: float | None = strawberry.field(
        description="Sum of the calls' durations (rounded to 6 decimals); null when none "
        "has a duration."
    )
    avg_duration_seconds: float | None = strawberry.field(
        description="Mean duration of the calls that have one (rounded to 6 decimals); "
        "null when none has."
    )

    @classmethod
    def from_row(cls, row: RowMapping) -> Self:
        """From summed ``session_tools`` columns."""
        return cls.of(
            row["tool_name"],
            row["calls"],
            row["failures"],
            float(row["total_duration_seconds"]),
            row["duration_count"],
        )

    @classmethod
    def of(cls, tool_name: str, calls: int, failures: int, total: float, timed: int) -> Self:
        """From a tool's calls and failures, and the summed seconds of its ``timed``
        calls (those with a duration)."""
        return cls(
            tool_name=tool_name,
            calls=calls,
            failures=failures,
            total_duration_seconds=round(total, DURATION_PLACES) if timed else None,
            avg_duration_seconds=round(total / timed, DURATION_PLACES) if timed else None,
        )
