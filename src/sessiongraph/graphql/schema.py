"""The schema, built per app from its settings."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import strawberry
from graphql import ASTValidationRule, GraphQLError, specified_rules
from strawberry.extensions import DisableIntrospection
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import DEFAULT_ALLOWED_OPERATION_TYPES
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from sessiongraph.config import Settings
from sessiongraph.graphql import compat
from sessiongraph.graphql.documents import DocumentCache
from sessiongraph.graphql.errors import ErrorShapes, is_unexpected
from sessiongraph.graphql.limits import Limits, RequestLimits
from sessiongraph.graphql.mutations import Mutation
from sessiongraph.graphql.query import Query
from sessiongraph.graphql.scalars import SCALAR_MAP
from sessiongraph.graphql.subscriptions import Subscription

logger = logging.getLogger("sessiongraph.graphql")

#: The extensions ``pipeline.run`` does the work of, in their order (and, in production,
#: ``DisableIntrospection``, whose rule it validates with).
_DONE_BY_PIPELINE = (RequestLimits, DocumentCache, ErrorShapes)


class Schema(strawberry.Schema):
    """Our schema: what its settings decide is fixed when it is built. It logs only
    unexpected errors (a client's mistake is not the server's), and runs
    subscriptions over WebSocket only.

    ``execute`` (a query or mutation over HTTP) runs ``pipeline.run``, which does what
    the extensions do without building them for every request; over WebSocket, or
    with ``lean`` off, Strawberry runs the extensions themselves. ``lean`` also turns
    the view's short way for HTTP on or off: off, a request goes Strawberry's way
    from the view on (as tests compare).
    """

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limits = Limits.from_settings(settings)
        self.max_tokens = settings.max_tokens
        #: "Did you mean ...?" hints about the schema in error messages.
        self.suggestions = not settings.is_production
        #: Validation results of documents, by text (valid for this schema only).
        self.validated = DocumentCache.store()
        #: Whether requests take the short ways (else Strawberry's own).
        self.lean = (
            not self.directives
            and not self.config.enable_experimental_incremental_execution
            and tuple(e for e in self.extensions if e is not DisableIntrospection)
            == _DONE_BY_PIPELINE
            and compat.lean_pipeline()
        )
        #: The rules documents are validated by: graphql-core's, then the one
        #: ``DisableIntrospection`` adds (as each request's ``on_operation`` would).
        self.validation_rules: tuple[type[ASTValidationRule], ...] = tuple(specified_rules)
        if self.lean and DisableIntrospection in self.extensions:
            self.validation_rules += tuple(DisableIntrospection().validation_rules)
        self._run: Callable[..., Awaitable[ExecutionResult]] | None = None
        if self.lean:
            from sessiongraph.graphql.pipeline import run  # what it imports is there

            self._run = run

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
        allowed.discard(OperationType.SUBSCRIPTION)
        if self.lean and self._run is not None:
            return await self._run(
                self,
                query,
                variable_values=variable_values,
                context_value=context_value,
                root_value=root_value,
                operation_name=operation_name,
                allowed=allowed,
                operation_extensions=operation_extensions,
            )
        return await super().execute(
            query,
            variable_values=variable_values,
            context_value=context_value,
            root_value=root_value,
            operation_name=operation_name,
            allowed_operation_types=allowed,
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
        execution_context_class=(
            compat.execution_context_class() if settings.compiled_execution else None
        ),
        config=StrawberryConfig(
            scalar_map=SCALAR_MAP,
            disable_field_suggestions=settings.is_production,
            # Whether batches are accepted, and how big, is the request guard's to decide.
            batching_config={"max_operations": 10_000},
        ),
    )
