"""Which host names the server answers for: the defence against DNS rebinding.

A page on another site can have its own name resolve to this server's address (DNS
rebinding); the browser then treats the server as that site, so the page may call it
with mutations and open WebSockets to it, and the same-origin check of a WebSocket
(Origin against Host) passes, as both name the attacker's site. What the browser cannot
change is the Host header: it names the attacker's site. So a request is served only
for a Host this server is meant to be reached by.

- Bound to a loopback address (`serve`'s default), only loopback names are (localhost,
  127.0.0.1, [::1], any port), and the configured ``allowed_hosts``.
- Bound to another address, the configured ``allowed_hosts``; with none configured any
  host is, and a warning at start recommends configuring them.

Where the app is served by some other command than ``serve`` (it does not know what its
server binds), the address each connection arrived at decides instead.

``/healthz`` and ``/metrics`` answer any host: probes and scrapers use addresses.

Starlette's ``TrustedHostMiddleware`` compares the header with one list, answers in
plain text, and exempts no path; what it matches (exact names, ``*.`` for subdomains)
is matched here the same way.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Collection, Sequence

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from sessiongraph.errors import ErrorCode
from sessiongraph.guard import error_response

logger = logging.getLogger("sessiongraph")

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
EXEMPT_PATHS = frozenset({"/healthz", "/metrics"})
SETTING = "SESSIONGRAPH_ALLOWED_HOSTS"


def is_loopback(address: str) -> bool:
    """Whether ``address`` (a host name or an IP address) is this machine's loopback."""
    name = address.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def host_name(header: str) -> str:
    """The host of a Host header, without its port, lower case; IPv6 without brackets."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _matches(name: str, patterns: Collection[str]) -> bool:
    if name in patterns or "*" in patterns:
        return True
    return any(p.startswith("*.") and name.endswith(p[1:]) for p in patterns)


class HostCheck:
    """An ASGI wrapper that refuses requests and WebSockets for a host not allowed: HTTP
    400 in the GraphQL error shape; a WebSocket is denied before it is accepted."""

    def __init__(self, app: ASGIApp, *, allowed: Sequence[str], listening_on: str | None) -> None:
        self.app = app
        self.allowed = frozenset(allowed)
        self.on_loopback = LOOPBACK_NAMES | self.allowed
        #: Whether the server is bound to a loopback address; None when not known.
        self.loopback = None if listening_on is None else is_loopback(listening_on)
        self._warned = False
        if self.loopback is False:
            self._warn_if_open()

    def _warn_if_open(self) -> None:
        if not self.allowed and not self._warned:
            self._warned = True
            logger.warning(
                "Listening on a non-loopback address with no %s: requests for any Host "
                "name are answered, so a web page can reach this server through DNS "
                "rebinding. Set %s to the names clients use.",
                SETTING,
                SETTING,
            )

    def allows(self, scope: Scope) -> bool:
        """Whether the request of ``scope`` names a host this server answers for."""
        loopback = self.loopback
        if loopback is None:  # judged by where the connection arrived
            server = scope.get("server")
            address = str(server[0]) if server else ""
            loopback = is_loopback(address)
            if not loopback and _is_ip(address):  # not an in-process test client's name
                self._warn_if_open()
        header = Headers(scope=scope).get("host")
        if loopback:
            return header is not None and _matches(host_name(header), self.on_loopback)
        if not self.allowed:
            return True
        return header is not None and _matches(host_name(header), self.allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] not in ("http", "websocket")
            or scope["path"] in EXEMPT_PATHS
            or self.allows(scope)
        ):
            await self.app(scope, receive, send)
            return
        host = Headers(scope=scope).get("host")
        refusal = error_response(
            400,
            f"This server does not answer for the host {host!r}: it answers for the names "
            f"in {SETTING} (and, bound to a loopback address, localhost)",
            ErrorCode.BAD_USER_INPUT,
            host=host,
        )
        if scope["type"] == "http":
            await refusal(scope, receive, send)
            return
        # A WebSocket: refused before it is accepted, with the same body where the server
        # can send one (the ASGI denial response), else with a close (HTTP 403).
        if "websocket.http.response" in scope.get("extensions", {}):
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": refusal.status_code,
                    "headers": refusal.raw_headers,
                }
            )
            await send({"type": "websocket.http.response.body", "body": refusal.body})
        else:
            await send({"type": "websocket.close", "code": 1008})
