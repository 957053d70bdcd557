"""Node: what has a globally unique id, so a client cache can keep and refetch it."""

from __future__ import annotations

import strawberry


@strawberry.interface(description="An object with a globally unique id; refetch it with `node`.")
class Node:
    id: strawberry.ID = strawberry.field(
        description="Globally unique id, the same on every instance and database."
    )
