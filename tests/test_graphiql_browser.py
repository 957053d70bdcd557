"""GraphiQL in a real browser: Debian's chromium, driven through its chromedriver by
selenium, headless, against `sessiongraph serve` on its demo data, with every host
name unresolvable (offline) and every request the page makes checked to stay on the
server. It renders, runs a query set in its editor, shows the docs, and shows a
subscription's events, over the WebSocket, as mutations sent from the test happen;
with a token required, the page still opens and the token typed into its Headers
editor reaches both the HTTP requests and the WebSocket.

Without chromium the tests skip, with a notice at the end of the run; with
SESSIONGRAPH_REQUIRE_BROWSER=1 (CI) they fail instead.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from sessiongraph.config import token_digest
from sessiongraph.graphiql import assets
from tests.conftest import graphiql_skipped
from tests.live import spawned_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REQUIRE_BROWSER = "SESSIONGRAPH_REQUIRE_BROWSER"
TOKEN = "graphiql-browser-test-token"

T = TypeVar("T")

#: Chromium's switches: headless, nothing of its own on the network (no sync, updates,
#: QUIC probes, first-run pages), and every host name failing to resolve, so a file
#: asked of any other host than the server's address fails as it would offline.
SWITCHES = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--window-size=1400,900",
)


def _unavailable(reason: str) -> None:
    """Skip (noted at the end of the run, see conftest), or fail where required."""
    if os.environ.get(REQUIRE_BROWSER) == "1":
        pytest.fail(f"a browser is required ({REQUIRE_BROWSER}=1): {reason}")
    graphiql_skipped.append(f"the browser tests: {reason}")
    pytest.skip(f"GraphiQL browser test skipped: {reason}")


@pytest.fixture(scope="module")
def ready() -> None:
    """Chromium there, and GraphiQL's files installed (as bootstrap does)."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        _unavailable(
            "no /usr/bin/chromium and /usr/bin/chromedriver (Debian: chromium chromium-driver)"
        )
    if assets.missing():
        try:
            assets.install()
        except assets.InstallError as error:
            _unavailable(str(error))


@pytest.fixture(scope="module")
def served(ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`sessiongraph serve` on demo data, as the quick start runs it (no tokens)."""
    with spawned_server(tmp_path_factory.mktemp("graphiql")) as base:
        yield base


@pytest.fixture(scope="module")
def served_with_token(ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The same, with a bearer token required."""
    env = {"SESSIONGRAPH_TOKEN_SHA256": token_digest(TOKEN)}
    with spawned_server(tmp_path_factory.mktemp("graphiql-token"), env=env) as base:
        yield base


@pytest.fixture(scope="module")
def browser(served: str) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="sessiongraph-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for switch in (*SWITCHES, f"--user-data-dir={profile}"):
        options.add_argument(switch)
    # Every request and socket the page opens (DevTools' network events), and its console.
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _until(check: Callable[[], T | None], what: str, seconds: float = 15) -> T:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.1)


def _network(driver: Any) -> list[dict[str, Any]]:
    """The DevTools network events logged since the last call."""
    events = [json.loads(entry["message"])["message"] for entry in driver.get_log("performance")]
    return [event for event in events if event["method"].startswith("Network.")]


def _open(driver: Any, served: str) -> None:
    driver.get(f"{served}/graphql")
    _until(
        lambda: driver.execute_script(
            "return !!document.querySelector('.graphiql-query-editor .CodeMirror')"
        ),
        "GraphiQL's query editor shown",
    )


def _set_query(driver: Any, query: str) -> None:
    driver.execute_script(
        "document.querySelector('.graphiql-query-editor .CodeMirror')"
        ".CodeMirror.setValue(arguments[0])",
        query,
    )
    # GraphiQL reads the operation's name from the editor a moment after a change
    # (debounced): run before that and it sends the previous name.
    time.sleep(0.6)


def _set_headers(driver: Any, headers: dict[str, str]) -> None:
    """Into the Headers editor (the second of the editor tools, after Variables)."""
    driver.execute_script(
        "document.querySelectorAll('.graphiql-editor-tool .CodeMirror')[1]"
        ".CodeMirror.setValue(arguments[0])",
        json.dumps(headers),
    )
    time.sleep(0.6)  # read a moment after a change, as the query is


def _run(driver: Any) -> None:
    driver.find_element("css selector", ".graphiql-execute-button").click()


def _response(driver: Any) -> str:
    text: str = driver.execute_script(
        "const editor = document.querySelector('.graphiql-response .CodeMirror');"
        "return editor ? editor.CodeMirror.getValue() : '';"
    )
    return text


def test_the_page_renders_offline_from_the_servers_own_files(browser: Any, served: str) -> None:
    _network(browser)  # drop what came before
    _open(browser, served)

    assert browser.title == "GraphiQL · sessiongraph"
    # The explorer plugin's panel is open, with the schema's root fields.
    _until(
        lambda: "sessions" in browser.find_element("css selector", ".graphiql-plugin").text,
        "the explorer lists the query fields",
    )
    requested = [
        event["params"]["request"]["url"]
        for event in _network(browser)
        if event["method"] == "Network.requestWillBeSent"
    ]
    assert f"{served}/graphql" in requested
    assert any("/graphiql/static/graphiql@" in url for url in requested)
    # (The browser's own pages, chrome://, are not the network.)
    network = [url for url in requested if url.startswith(("http:", "https:", "ws:", "wss:"))]
    elsewhere = [url for url in network if not url.startswith(served)]
    assert elsewhere == [], f"the page asked other hosts: {elsewhere}"
    # Nothing refused by the Content-Security-Policy, no script error.
    problems = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert problems == []


def test_a_query_set_in_the_editor_runs_and_its_result_shows(browser: Any, served: str) -> None:
    _open(browser, served)
    _set_query(browser, "query Few { sessions(first: 3) { totalCount nodes { id status } } }")
    _run(browser)

    shown = _until(lambda: _response(browser), "the result shown")
    result = json.loads(shown)
    assert "errors" not in result
    assert result["data"]["sessions"]["totalCount"] == 200
    assert len(result["data"]["sessions"]["nodes"]) == 3


def test_the_docs_show_a_type(browser: Any, served: str) -> None:
    _open(browser, served)
    browser.find_element("css selector", 'button[aria-label="Show Documentation Explorer"]').click()
    docs = _until(
        lambda: browser.find_elements("css selector", ".graphiql-doc-explorer"), "the docs open"
    )[0]
    _until(lambda: "Query" in docs.text, "the docs list the root types")
    docs.find_element("link text", "Query").click()
    _until(lambda: "sessions" in docs.text and "session(" in docs.text, "the Query type's fields")
    docs.find_element("link text", "Session").click()
    _until(lambda: "totalCostDisplay" in docs.text, "the Session type's fields")


def _start(served: str, session_id: str, headers: dict[str, str] | None = None) -> None:
    response = httpx.post(
        f"{served}/graphql",
        json={
            "query": "mutation Start($input: StartSessionInput!) "
            "{ startSession(input: $input) { id } }",
            "variables": {"input": {"id": session_id, "workflowId": "wf-browser"}},
        },
        headers=headers,
        timeout=10,
    )
    assert response.json()["data"]["startSession"]["id"] == session_id


def _first_event(
    driver: Any, served: str, prefix: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """The first event the running subscription shows: it listens a moment after it is
    sent, so sessions are started (ids ``prefix-N``) until one shows."""
    started = iter(range(100))

    def shown_after_a_start() -> dict[str, Any] | None:
        _start(served, f"{prefix}-{next(started)}", headers)
        time.sleep(0.2)
        text = _response(driver)
        return json.loads(text) if '"sessionsChanged"' in text else None

    event: dict[str, Any] = _until(shown_after_a_start, "a first event shown")
    return event


SUBSCRIPTION = "subscription Live { sessionsChanged { kind matchesFilter session { id status } } }"


def test_a_subscription_shows_live_events_over_the_websocket(browser: Any, served: str) -> None:
    _open(browser, served)
    _network(browser)
    _set_query(browser, SUBSCRIPTION)
    _run(browser)

    first = _first_event(browser, served, "browser")["data"]["sessionsChanged"]
    assert first["kind"] == "STARTED"
    assert first["session"]["id"].startswith("browser-")

    _start(served, "browser-next")
    _until(lambda: "browser-next" in _response(browser), "the next event shown")

    events = _network(browser)
    sockets = [e["params"]["url"] for e in events if e["method"] == "Network.webSocketCreated"]
    assert sockets == [served.replace("http://", "ws://") + "/graphql"]
    posted = [
        e["params"]["request"]
        for e in events
        if e["method"] == "Network.requestWillBeSent" and e["params"]["request"]["method"] == "POST"
    ]
    assert posted == []  # the subscription never went over HTTP


def test_with_a_token_required_the_headers_editor_carries_it_to_http_and_the_websocket(
    browser: Any, served_with_token: str
) -> None:
    served = served_with_token
    authorization = {"Authorization": f"Bearer {TOKEN}"}
    _open(browser, served)  # the page itself needs no token
    _set_query(browser, "query Count { sessions { totalCount } }")
    _run(browser)
    refused = json.loads(_until(lambda: _response(browser), "the refusal shown"))
    assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    _set_headers(browser, authorization)
    _run(browser)
    answered = _until(lambda: '"totalCount"' in _response(browser), "the answer shown")
    assert answered
    assert json.loads(_response(browser))["data"]["sessions"]["totalCount"] == 200

    # A subscription's socket sends the same headers with connection_init.
    _set_query(browser, SUBSCRIPTION)
    _run(browser)
    event = _first_event(browser, served, "token", authorization)
    assert event["data"]["sessionsChanged"]["session"]["id"].startswith("token-")
