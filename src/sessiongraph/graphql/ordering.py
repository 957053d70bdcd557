"""How sessions are sorted: the ``orderBy`` input and what it means for the database."""

from __future__ import annotations

from enum import Enum

import strawberry

from sessiongraph.db.queries import SessionOrdering
from sessiongraph.graphql.cursors import ValueKind


@strawberry.enum(description="Sort direction.")
class OrderDirection(Enum):
    ASC = strawberry.enum_value("asc", description="Smallest first.")
    DESC = strawberry.enum_value("desc", description="Largest first.")


@strawberry.enum(description="What sessions can be sorted by. Sessions without a value come last.")
class SessionOrderField(Enum):
    STARTED_AT = strawberry.enum_value("started_at", description="Start time.")
    COMPLETED_AT = strawberry.enum_value("completed_at", description="Completion time.")
    TOTAL_COST_USD = strawberry.enum_value("total_cost_usd", description="Total cost.")
    TOTAL_TOKENS = strawberry.enum_value("total_tokens", description="All tokens.")
    DURATION_SECONDS = strawberry.enum_value("duration_seconds", description="Run time.")
    OPERATION_COUNT = strawberry.enum_value("operation_count", description="Operations recorded.")
    TOOL_CALL_COUNT = strawberry.enum_value("tool_call_count", description="Tool calls.")
    FAILED_OPERATION_COUNT = strawberry.enum_value(
        "failed_operation_count", description="Operations with success = false."
    )
    UPDATED_AT = strawberry.enum_value(
        "updated_at", description="Last change (see Session.updatedAt)."
    )


#: What a cursor holds for each sort field.
VALUE_KINDS = {
    SessionOrderField.STARTED_AT: ValueKind.DATETIME,
    SessionOrderField.COMPLETED_AT: ValueKind.DATETIME,
    SessionOrderField.TOTAL_COST_USD: ValueKind.DECIMAL,
    SessionOrderField.TOTAL_TOKENS: ValueKind.INT,
    SessionOrderField.DURATION_SECONDS: ValueKind.FLOAT,
    SessionOrderField.OPERATION_COUNT: ValueKind.INT,
    SessionOrderField.TOOL_CALL_COUNT: ValueKind.INT,
    SessionOrderField.FAILED_OPERATION_COUNT: ValueKind.INT,
    SessionOrderField.UPDATED_AT: ValueKind.DATETIME,
}


@strawberry.input(description="How to sort sessions; ties are broken by id.")
class SessionOrder:
    field: SessionOrderField = strawberry.field(
        default=SessionOrderField.STARTED_AT, description="The value to sort by."
    )
    direction: OrderDirection = strawberry.field(
        default=OrderDirection.DESC, description="Sort direction."
    )

    def ordering(self) -> SessionOrdering:
        return SessionOrdering(
            column=self.field.name.lower(), descending=self.direction is OrderDirection.DESC
        )

    @property
    def scope(self) -> str:
        """What a cursor of this order is valid for."""
        return f"sessions:{self.field.name}:{self.direction.name}"

    @property
    def value_kind(self) -> ValueKind:
        return VALUE_KINDS[self.field]
