"""Which GraphQL errors are the server's own failures, and how those are shown."""

from __future__ import annotations

from graphql import GraphQLError

from sessiongraph.errors import ApiError

INTERNAL_MESSAGE = "Internal server error"


def is_unexpected(error: GraphQLError) -> bool:
    """True for a failure of the server during execution, not a client mistake."""
    if isinstance(error.original_error, ApiError):
        return False
    return error.path is not None and "code" not in (error.extensions or {})
