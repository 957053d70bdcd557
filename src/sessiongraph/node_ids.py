"""Global ids for client caches (``Node.id``): a session's is its own id, an operation's
is ``op:`` + base64url of its operation id, unpadded.

A pure function of the operation id, the same on every instance and database, and
not signed: it names an operation, it grants nothing. The prefix keeps the two kinds
apart, which holds because no session id may start with it (``inputs.check_session_id``).
Relay's own encoding (base64 of ``Type:id``) is not used: it would change the values of
the session ids every client already holds.
"""

from __future__ import annotations

import base64
import binascii

#: What every operation's global id starts with, and no session id does.
OPERATION_PREFIX = "op:"


def operation_node_id(operation_id: str) -> str:
    """The global id of the operation ``operation_id``."""
    encoded = base64.urlsafe_b64encode(operation_id.encode("utf-8", "surrogatepass"))
    return OPERATION_PREFIX + encoded.rstrip(b"=").decode("ascii")


def operation_id_of(node_id: str) -> str | None:
    """The operation id that ``node_id`` is the global id of; None when it is no
    operation's global id as ``operation_node_id`` writes it (another prefix, not
    base64url, padded, not UTF-8, or a second spelling of the same bytes): ids match
    exactly."""
    if not node_id.startswith(OPERATION_PREFIX):
        return None
    encoded = node_id[len(OPERATION_PREFIX) :]
    if not encoded.isascii() or "=" in encoded:
        return None
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        operation_id = raw.decode("utf-8", "surrogatepass")
    except (binascii.Error, ValueError):
        return None
    # The decoder skips characters outside the alphabet and ignores stray bits: only
    # the one spelling that encodes these bytes names them.
    return operation_id if operation_node_id(operation_id) == node_id else None
