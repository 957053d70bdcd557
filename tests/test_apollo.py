"""@apollo/client 4 against the real server (SPEC §6): its default cache normalizes
Session, Operation and Workflow, two queries of the same operations merge, and
``relayStylePagination`` pages with ``fetchMore``.

The client is the npm package itself (tests/js/apollo, pinned by its lock), run by
node against `sessiongraph serve` on its demo data. Without node the test is skipped,
loudly; with SESSIONGRAPH_REQUIRE_NODE set (as CI sets it) it fails instead.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.live import spawned_server

REQUIRE_NODE = "SESSIONGRAPH_REQUIRE_NODE"
PROJECT = Path(__file__).resolve().parent / "js" / "apollo"
#: Where the server listens: the first free port of these.
PORTS = range(18750, 18800)
CHECKS = {
    "Session normalized",
    "Operation normalized",
    "Operation key is its global id",
    "Workflow normalized",
    "nodes refetches into the same entries",
    "two queries of the same operations both stay readable",
    "control: without Operation.id the first query is lost",
    "relayStylePagination pages with fetchMore",
    "... on Node with possibleTypes",
}


def node_and_npm() -> tuple[str, str]:
    """node and npm, installing the project's packages from its lock when missing;
    skips (or fails, under SESSIONGRAPH_REQUIRE_NODE) without them."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        reason = "NODE IS MISSING: the @apollo/client checks did not run (install nodejs, npm)"
        if os.environ.get(REQUIRE_NODE):
            pytest.fail(f"{reason}; {REQUIRE_NODE} is set")
        pytest.skip(reason)
    if not (PROJECT / "node_modules").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=PROJECT, check=True, timeout=600)
    return node, npm


def free_port_in(ports: range) -> int:
    for port in ports:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free port in {ports}")


def test_apollo_clients_default_cache_normalizes_and_merges(tmp_path: Path) -> None:
    node, _ = node_and_npm()

    with spawned_server(tmp_path, port=free_port_in(PORTS)) as base:  # demo data
        run = subprocess.run(
            [node, "check.mjs", f"{base}/graphql"],
            cwd=PROJECT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    results = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    failed = [result for result in results if not result["ok"]]
    assert {result["check"] for result in results} == CHECKS, run.stdout + run.stderr
    assert failed == [], run.stdout + run.stderr
    assert run.returncode == 0, run.stderr
