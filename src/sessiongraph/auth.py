"""Bearer tokens, configured by their SHA-256 digests: who may read, and who may also write."""

from __future__ import annotations

import hmac
from enum import Enum

from sessiongraph.config import Settings, token_digest


class Access(Enum):
    READ_WRITE = "read-write"
    READ_ONLY = "read-only"


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self.required = settings.auth_required
        self._digests = [(d, Access.READ_WRITE) for d in settings.token_sha256] + [
            (d, Access.READ_ONLY) for d in settings.read_only_token_sha256
        ]

    def access(self, authorization: str | None) -> Access | None:
        """What an ``Authorization`` header value grants; None when it grants nothing.

        With no tokens configured everyone reads and writes. Every configured digest
        is compared, in constant time, so timing tells nothing about which matched.
        """
        if not self.required:
            return Access.READ_WRITE
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        digest = token_digest(token.strip())
        granted = None
        for configured, access in self._digests:
            if hmac.compare_digest(configured, digest) and granted is None:
                granted = access
        return granted
