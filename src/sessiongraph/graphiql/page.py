"""The GraphiQL page at /graphql (for a browser's GET) and its files under
/graphiql/static/.

The page and its files hold no data, so they are public: no token is asked for (the
API behind the same URL still asks, and the headers editor sends one), and the Host
check, outermost, applies to them as to everything. The page loads only this server's
files, named by version (``<package>@<version>/<file>``, ours by a hash of their
content), so they are cached for a year as immutable; its Content-Security-Policy
allows nothing else. Its URLs are relative to the page's, so it works wherever the app
is mounted or proxied under a prefix. With the files missing (``assets.missing``), the
page is a 503 that says so and names the command that installs them.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Mapping
from pathlib import Path

from starlette.datastructures import Headers, QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from sessiongraph.graphiql import assets

#: The URL path the files are served under (and, without its leading slash, the page's
#: relative link to it: the page is at the sibling path /graphql).
STATIC_PATH = "/graphiql/static"

_HERE = Path(__file__).parent
_OWN_FILES = ("graphiql.js", "graphiql.css")
_OWN_VERSION = hashlib.sha256(
    b"".join((_HERE / name).read_bytes() for name in _OWN_FILES)
).hexdigest()[:12]
_OWN = {f"sessiongraph@{_OWN_VERSION}/{name}": _HERE / name for name in _OWN_FILES}

_MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}

#: Nothing but this server's own scripts, styles and connections (a WebSocket to the
#: same host included: 'self' covers ws: and wss: there); GraphiQL's stylesheet embeds
#: its fonts and icons as data: URLs.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-cache",
    "Vary": "Accept",  # the same URL answers operations with JSON
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_FILE_HEADERS = {
    "Cache-Control": "public, max-age=31536000, immutable",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Vary": "Accept-Encoding",
}


def is_page_request(method: str, params: Mapping[str, str], accept: str) -> bool:
    """Whether a request to /graphql is a browser's for the page: Strawberry's rule (a
    GET with no ``query``, accepting HTML or anything), and no ``extensions`` either (a
    GET carrying only a persisted query's hash is an operation). The view decides by
    it too, so the page and the operations split the same way before and after the
    guard."""
    return (
        method == "GET"
        and "query" not in params
        and "extensions" not in params
        and ("text/html" in accept or "*/*" in accept)
    )


def wants_page(scope: Scope) -> bool:
    """``is_page_request`` for an ASGI scope."""
    if scope["type"] != "http" or scope["method"] != "GET":
        return False
    accept = Headers(scope=scope).get("accept", "")
    return is_page_request("GET", QueryParams(scope["query_string"]), accept)


def _link(path: str) -> str:
    return html.escape(f"{STATIC_PATH.lstrip('/')}/{path}")


def page() -> Response:
    """GraphiQL, or (503) what is missing and how to install it."""
    problems = assets.missing(assets.VENDOR)
    own_css = _link(f"sessiongraph@{_OWN_VERSION}/graphiql.css")
    if problems:
        listed = "".join(f"<li>{html.escape(problem)}</li>" for problem in problems)
        body = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>GraphiQL is not installed · sessiongraph</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{own_css}">
</head>
<body class="missing-page">
<main class="missing">
<h1>GraphiQL's files are not installed</h1>
<p>This server serves GraphiQL from its own copy of GraphiQL's files, so that the page
loads nothing from other hosts, and that copy is not there:</p>
<ul>{listed}</ul>
<p>Install them with <code>{assets.INSTALL_COMMAND}</code> in the sessiongraph
checkout (it fetches pinned releases from the npm registry with <code>npm</code> and
checks each against its recorded sha512), or with
<code>python -m sessiongraph.graphiql.assets</code> in the server's environment, then
reload this page.</p>
<p>The API works meanwhile: send GraphQL operations to this URL with POST.</p>
</main>
</body>
</html>
"""
        return HTMLResponse(body, status_code=503, headers=_PAGE_HEADERS)
    styles = [path for path in assets.asset_paths() if path.endswith(".css")]
    scripts = [path for path in assets.asset_paths() if path.endswith(".js")]
    head = "\n".join(f'<link rel="stylesheet" href="{_link(path)}">' for path in styles)
    tail = "\n".join(f'<script src="{_link(path)}"></script>' for path in scripts)
    body = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>GraphiQL · sessiongraph</title>
<link rel="icon" href="data:,">
{head}
<link rel="stylesheet" href="{own_css}">
</head>
<body>
<div id="graphiql">Loading GraphiQL…</div>
{tail}
<script src="{_link(f"sessiongraph@{_OWN_VERSION}/graphiql.js")}"></script>
</body>
</html>
"""
    return HTMLResponse(body, headers=_PAGE_HEADERS)


class PageFirst:
    """In front of the /graphql endpoint: a browser's GET for the page gets it here,
    before the guard asks for a token; everything else goes on to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if wants_page(scope):
            await page()(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def static_file(request: Request) -> Response:
    """One of the page's files, gzipped where the client accepts it; any other path is
    a 404 (only the files listed are served, so no path reaches outside them)."""
    path: str = request.path_params["path"]
    file = _OWN.get(path)
    if file is None and path in assets.asset_paths():
        file = assets.VENDOR / path
    if file is None or not file.is_file():
        raise HTTPException(404, f"No GraphiQL file at {STATIC_PATH}/{path}")
    headers = dict(_FILE_HEADERS)
    media_type = _MEDIA_TYPES[file.suffix]
    packed = file.with_name(file.name + ".gz")
    if "gzip" in request.headers.get("accept-encoding", "") and packed.is_file():
        headers["Content-Encoding"] = "gzip"
        file = packed
    return FileResponse(file, media_type=media_type, headers=headers)
