"""The GraphiQL page and its files over HTTP: what the page links to, how the files are
cached, the checks kept around them, and the page shown when the files are missing.
The page in a browser: test_graphiql_browser.py."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from sessiongraph.app import create_app
from sessiongraph.config import Settings, token_digest
from sessiongraph.graphiql import assets
from sessiongraph.graphiql.page import CONTENT_SECURITY_POLICY
from tests.conftest import graphiql_skipped

# The page has nothing to do with the database: once is enough.
pytestmark = pytest.mark.sqlite_only

HTML = {"Accept": "text/html"}
REQUIRE_NODE = "SESSIONGRAPH_REQUIRE_NODE"
RELEASE = {release.name: release for release in assets.RELEASES}
GRAPHIQL = RELEASE["graphiql"].spec
REACT = RELEASE["react"]


def _npm_or_skip() -> None:
    if shutil.which("npm") is None:
        if os.environ.get(REQUIRE_NODE) == "1":
            pytest.fail(f"npm is required ({REQUIRE_NODE}=1) and not installed")
        graphiql_skipped.append("npm is not installed, so GraphiQL's files cannot be fetched")
        pytest.skip("npm is not installed: GraphiQL's files cannot be fetched")


@pytest.fixture(scope="module")
def installed() -> None:
    """GraphiQL's files, as scripts/bootstrap installs them."""
    if assets.missing():
        _npm_or_skip()
        assets.install()


async def _client(app: Starlette, **options: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, **options)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(app):
        yield client


def _links(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', page)


async def test_the_page_loads_only_the_servers_own_versioned_files(
    installed: None, http: httpx.AsyncClient
) -> None:
    page = await http.get("/graphql", headers=HTML)

    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY
    assert page.headers["cache-control"] == "no-cache"
    links = [link for link in _links(page.text) if link != "data:,"]
    # Every release's files, and ours (sessiongraph@<hash>), relative to the page.
    assert sorted(links) == sorted(
        [f"graphiql/static/{path}" for path in assets.asset_paths()]
        + [link for link in links if link.startswith("graphiql/static/sessiongraph@")]
    )
    assert len(links) == len(assets.asset_paths()) + 2
    assert "<script>" not in page.text  # nothing inline: the CSP would refuse it

    for link in links:
        plain = await http.get(f"/{link}", headers={"Accept-Encoding": "identity"})
        packed = await http.get(f"/{link}", headers={"Accept-Encoding": "gzip"})
        assert plain.status_code == packed.status_code == 200, link
        assert plain.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert plain.headers["x-content-type-options"] == "nosniff"
        assert plain.headers["content-type"].startswith(
            "text/javascript" if link.endswith(".js") else "text/css"
        )
        assert "content-encoding" not in plain.headers
        if "sessiongraph@" not in link:  # GraphiQL's come gzipped to who accepts it
            assert packed.headers["content-encoding"] == "gzip"
            assert int(packed.headers["content-length"]) < len(plain.content)
            assert packed.content == plain.content  # (httpx decodes it)


async def test_the_files_hold_what_the_page_needs(installed: None) -> None:
    bundle = (assets.VENDOR / GRAPHIQL / "graphiql.min.js").read_text()
    # GraphiQL's bundle carries the WebSocket client its fetcher uses for subscriptions.
    assert "graphql-transport-ws" in bundle
    own = (Path(assets.__file__).parent / "graphiql.js").read_text()
    assert "subscriptionUrl" in own


@pytest.mark.parametrize("how", ["mount", "root_path"])
async def test_under_a_path_prefix_the_pages_links_reach_its_files(
    installed: None, app: Starlette, how: str
) -> None:
    outer = Starlette(routes=[Mount("/api", app)]) if how == "mount" else app
    async for client in _client(outer, root_path="" if how == "mount" else "/api"):
        page = await client.get("/api/graphql", headers=HTML)
        assert page.status_code == 200
        for link in _links(page.text):
            if link.startswith("data:"):
                continue
            url = urljoin("http://localhost/api/graphql", link)
            assert url.startswith("http://localhost/api/graphiql/static/")
            assert (await client.get(url)).status_code == 200, url


async def test_with_tokens_the_page_and_files_are_public_and_the_api_is_not(
    installed: None, settings: Settings
) -> None:
    secured = create_app(settings.model_copy(update={"token_sha256": [token_digest("t" * 20)]}))
    async with secured.router.lifespan_context(secured):
        async for client in _client(secured):
            page = await client.get("/graphql", headers=HTML)
            script = await client.get(f"/graphiql/static/{assets.asset_paths()[0]}")
            query = await client.get("/graphql", params={"query": "{ __typename }"})
            posted = await client.post("/graphql", json={"query": "{ __typename }"})
            rebound = await client.get("/graphql", headers={**HTML, "Host": "rebound.example"})

    assert page.status_code == script.status_code == 200
    assert query.status_code == posted.status_code == 401
    assert posted.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert rebound.status_code == 400  # the Host check holds for the page too


@pytest.mark.parametrize(
    "path",
    [
        f"{GRAPHIQL}/package.json",
        f"{GRAPHIQL}/graphiql.min.js.map",
        f"{GRAPHIQL}/../installed.json",
        "installed.json",
        "sessiongraph@0/graphiql.js",
        "..%2F..%2Fpage.py",
    ],
)
async def test_only_the_listed_files_are_served(
    installed: None, http: httpx.AsyncClient, path: str
) -> None:
    response = await http.get(f"/graphiql/static/{path}")

    assert response.status_code == 404
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_in_production_neither_page_nor_files(installed: None, settings: Settings) -> None:
    production = create_app(settings.model_copy(update={"env": "production"}))
    async with production.router.lifespan_context(production):
        async for client in _client(production):
            page = await client.get("/graphql", headers=HTML)
            script = await client.get(f"/graphiql/static/{assets.asset_paths()[0]}")

    assert "graphiql" not in page.text.lower()
    assert script.status_code == 404


async def test_without_its_files_the_page_says_so_and_how_to_install_them(
    http: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(assets, "VENDOR", tmp_path / "vendor")

    page = await http.get("/graphql", headers=HTML)

    assert page.status_code == 503
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "GraphiQL's files are not installed" in page.text
    assert "<code>scripts/bootstrap</code>" in page.text
    assert "no GraphiQL files are installed" in page.text
    # Its own stylesheet is there; GraphiQL's files are not served.
    [style] = [link for link in _links(page.text) if link.endswith(".css")]
    assert (await http.get(f"/{style}")).status_code == 200
    assert (await http.get(f"/graphiql/static/{assets.asset_paths()[0]}")).status_code == 404
    # The API goes on.
    answer = await http.post("/graphql", json={"query": "{ __typename }"})
    assert answer.json()["data"] == {"__typename": "Query"}

    # Files of other releases than this version pins are not taken for them.
    (tmp_path / "vendor").mkdir()
    (tmp_path / "vendor" / assets.RECORD).write_text(json.dumps({"graphiql@0.1.0": "x"}))
    stale = await http.get("/graphql", headers=HTML)
    assert stale.status_code == 503
    assert "other releases" in stale.text


def test_install_fetches_checks_and_unpacks_only_the_pinned_files(tmp_path: Path) -> None:
    _npm_or_skip()
    vendor = tmp_path / "vendor"

    assets.install(vendor, releases=(REACT,))

    installed = sorted(str(p.relative_to(vendor)) for p in vendor.rglob("*") if p.is_file())
    file = f"{REACT.spec}/{REACT.files[0]}"
    assert installed == sorted([assets.RECORD, file, f"{file}.gz"])
    assert gzip.decompress((vendor / f"{file}.gz").read_bytes()) == (vendor / file).read_bytes()
    assert json.loads((vendor / assets.RECORD).read_text()) == {REACT.spec: REACT.integrity}
    assert [p.name for p in tmp_path.iterdir()] == ["vendor"]  # the work folder is gone


def test_install_refuses_a_tarball_whose_sha512_is_not_the_recorded_one(tmp_path: Path) -> None:
    _npm_or_skip()
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    (vendor / "kept").write_text("what was there")
    wrong = assets.Release(REACT.name, REACT.version, assets.integrity(b"other"), REACT.files)

    with pytest.raises(assets.InstallError, match="sha512 is not the one recorded"):
        assets.install(vendor, releases=(wrong,))

    assert [p.name for p in vendor.iterdir()] == ["kept"]  # nothing changed
    assert [p.name for p in tmp_path.iterdir()] == ["vendor"]
