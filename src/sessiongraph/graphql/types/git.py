"""Git facts recorded with an operation."""

from __future__ import annotations

from typing import Any

import strawberry

from sessiongraph.stored import as_bool, as_int, as_text


@strawberry.type(
    description="Git facts recorded with an operation. Every field is optional; "
    "stored keys this version does not know are ignored."
)
class GitInfo:
    operation: str | None = strawberry.field(description="Git action: commit, push, ...")
    sha: str | None = strawberry.field(description="Commit SHA.")
    branch: str | None = strawberry.field(description="Branch the action ran on.")
    repo: str | None = strawberry.field(description="Repository, owner/name.")
    message: str | None = strawberry.field(description="Commit message.")
    prev_branch: str | None = strawberry.field(description="Branch before a branch change.")
    is_clone: bool | None = strawberry.field(description="Whether the action was a clone.")
    remote: str | None = strawberry.field(description="Remote name, e.g. origin.")
    author: str | None = strawberry.field(description="Commit author.")
    files_changed: int | None = strawberry.field(description="Files changed.")
    insertions: int | None = strawberry.field(description="Lines inserted.")
    deletions: int | None = strawberry.field(description="Lines deleted.")
    commits_count: int | None = strawberry.field(description="Commits pushed or merged.")
    commit_range: str | None = strawberry.field(description="Commit range, e.g. abc..def.")
    remote_url: str | None = strawberry.field(description="URL of the remote.")
    details: str | None = strawberry.field(description="Free-form details.")
    from_branch: str | None = strawberry.field(description="Source branch of a merge.")
    to_branch: str | None = strawberry.field(description="Target branch of a merge.")
    estimated_tokens_added: int | None = strawberry.field(
        description="Estimated tokens the change added to the context."
    )
    estimated_tokens_removed: int | None = strawberry.field(
        description="Estimated tokens the change removed from the context."
    )

    @classmethod
    def from_stored(cls, stored: Any) -> GitInfo | None:
        """Read stored git data leniently: unknown keys dropped, bad values as null."""
        if not isinstance(stored, dict):
            return None
        values: dict[str, Any] = {}
        for name, kind in _FIELD_KINDS.items():
            raw = stored.get(name)
            values[name] = None if raw is None else kind(raw)
        return cls(**values)


_INT_FIELDS = {
    "files_changed",
    "insertions",
    "deletions",
    "commits_count",
    "estimated_tokens_added",
    "estimated_tokens_removed",
}
_FIELD_KINDS = {
    name: as_bool if name == "is_clone" else as_int if name in _INT_FIELDS else as_text
    for name in GitInfo.__annotations__
}
