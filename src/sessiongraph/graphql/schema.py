"""The schema, built per app from its settings."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import DisableIntrospection
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import DEFAULT_ALLOWED_OPERATION_TYPES
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from sessiongraph.config import Settings
from sessiongraph.graphql.compat import execution_context_class
from sessiongraph.graphql.documents import DocumentCache
from sessiongraph.graphql.errors import ErrorShapes, is_unexpected
from sessiongraph.graphql.limits import Limits, RequestLimits
from sessiongraph.graphql.mutations import Mutation
from sessiongraph.graphql.query import Query
from sessiongraph.graphql.scalars import SCALAR_MAP
from sessiongraph.graphql.subscriptions import Subscription

logger = logging.getLogger("sessiongraph.graphql")


class Schema(strawberry.Schema):
    """Our schema: what its settings decide is fixed when it is built. It logs only
    unexpected errors (a client's mistake is not the server's), and runs
    subscriptions over WebSocket only."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limits = Limits.from_settings(settings)
        self.max_tokens = settings.max_tokens
        #: "Did you mean ...?" hints about the schema in error messages.
        self.suggestions = not settings.is_production
        #: Validation results of documents, by text (valid for this schema only).
        self.validated = DocumentCache.store()

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        # Run as a single HTTP request, a subscription's stream of events has nowhere
        # to go: refuse it (HTTP 400) and keep subscriptions to the WebSocket.
        allowed = set(allowed_operation_types or DEFAULT_ALLOWED_OPERATION_TYPES)
        return await super().execute(
            query,
            variable_values=variable_values,
            context_value=context_value,
            root_value=root_value,
            operation_name=operation_name,
            allowed_operation_types=allowed - {OperationType.SUBSCRIPTION},
            operation_extensions=operation_extensions,
        )

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            if is_unexpected(error):
                logger.error(
                    "unexpected error at %s", error.path, exc_info=error.original_error or error
                )


def build_schema(settings: Settings) -> Schema:
    """The schema for ``settings``: limits, introspection, suggestions and the
    execution path are decided here, once."""
    extensions: list[Any] = [RequestLimits, DocumentCache, ErrorShapes]
    if not settings.introspection_enabled:
        extensions.append(DisableIntrospection)
    return Schema(
        settings,
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        execution_context_class=execution_context_class() if settings.compiled_execution else None,
        config=StrawberryConfig(
            scalar_map=SCALAR_MAP,
            disable_field_suggestions=settings.is_production,
            # Whether batches are accepted, and how big, is the request guard's to decide.
            batching_config={"max_operations": 10_000},
        ),
    )
