"""The npm projects under tests/js: node found (or the test skipped loudly, or failed
where CI requires node), each project installed from its lock on first use."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

JS = Path(__file__).resolve().parent / "js"
#: Set by CI (`.ci/run`): a test needing node fails rather than skipping without it.
REQUIRE_NODE = "SESSIONGRAPH_REQUIRE_NODE"


def node() -> str:
    """The node executable; without one, skip loudly (fail when CI requires node)."""
    found = shutil.which("node")
    if found is None or shutil.which("npm") is None:
        reason = (
            "NODE IS NOT INSTALLED: this test runs a JavaScript client (install Debian's "
            "`nodejs npm`, as .ci/run does)"
        )
        if os.environ.get(REQUIRE_NODE):
            pytest.fail(f"{reason}, and {REQUIRE_NODE} is set")
        pytest.skip(reason)
    return found


def project(name: str) -> Path:
    """The npm project ``tests/js/<name>``, installed from its lock (`npm ci`) when its
    node_modules is missing or older than the lock."""
    node()
    folder = JS / name
    modules = folder / "node_modules"
    lock = folder / "package-lock.json"
    stamp = modules / ".package-lock.json"  # npm writes it on every install
    if not stamp.exists() or stamp.stat().st_mtime < lock.stat().st_mtime:
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=folder,
            check=True,
            timeout=300,
        )
    return folder


def run(name: str, script: str, *args: str, timeout: float = 60) -> str:
    """Run ``script`` of project ``name`` with node; its standard output (it must exit 0)."""
    folder = project(name)
    finished = subprocess.run(
        [node(), script, *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    return finished.stdout
