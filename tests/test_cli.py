"""The command line as a user runs it: export-schema, seed and serve."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sessiongraph.cli import main
from sessiongraph.config import Settings
from sessiongraph.graphiql import assets
from sessiongraph.graphql.schema import build_schema
from tests.live import spawned_server

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_committed_schema_matches_the_code() -> None:
    committed = (REPO_ROOT / "schema.graphql").read_text(encoding="utf-8")

    assert committed == build_schema(Settings()).as_str() + "\n", (
        "schema.graphql is stale: run `sessiongraph export-schema`"
    )


def test_export_schema_check_reports_drift(tmp_path: Path) -> None:
    target = tmp_path / "schema.graphql"

    assert main(["export-schema", "--output", str(target)]) == 0
    assert main(["export-schema", "--output", str(target), "--check"]) == 0

    target.write_text(target.read_text() + "\ntype Stale { x: Int }\n")
    assert main(["export-schema", "--output", str(target), "--check"]) == 1


def test_seed_command_fills_and_refuses_a_second_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"

    assert main(["seed", "--sessions", "12", "--seed", "3", "--database-url", url]) == 0
    assert "Seeded 12 sessions" in capsys.readouterr().err

    assert main(["seed", "--sessions", "12", "--database-url", url]) == 1
    assert "--reset" in capsys.readouterr().err

    assert main(["seed", "--sessions", "5", "--reset", "--database-url", url]) == 0
    assert "Seeded 5 sessions" in capsys.readouterr().err


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """`sessiongraph serve` in a fresh directory with no configuration: the README's command."""
    with spawned_server(tmp_path) as base:
        yield base


def test_serve_answers_with_demo_data_for_loopback_names_only(served: str) -> None:
    query = "{ sessions(first: 5) { totalCount nodes { id status totalCostDisplay } } }"
    port = served.rsplit(":", 1)[1]

    response = httpx.post(f"{served}/graphql", json={"query": query}, timeout=10)
    # `serve` binds 127.0.0.1 by default: a name rebound to it is refused (test_hosts.py)
    rebound = httpx.post(
        f"{served}/graphql",
        json={"query": query},
        headers={"host": f"rebound.example:{port}"},
        timeout=10,
    )

    assert rebound.status_code == 400
    assert rebound.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"

    assert response.status_code == 200
    connection = response.json()["data"]["sessions"]
    assert connection["totalCount"] == 200
    assert len(connection["nodes"]) == 5
    assert all(node["totalCostDisplay"].startswith(("$", "<$")) for node in connection["nodes"])


def test_serve_shows_graphiql_to_a_browser(served: str) -> None:
    response = httpx.get(f"{served}/graphql", headers={"Accept": "text/html"}, timeout=10)

    assert "graphiql" in response.text.lower()
    # Its files come from bootstrap, with npm (test_graphiql.py); without, the page says so.
    if assets.missing():
        assert response.status_code == 503
        assert "scripts/bootstrap" in response.text
    else:
        assert response.status_code == 200


def test_import_command_reports_counts_and_skipped_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'import.db'}"
    good = {"id": "s-1", "status": "running", "operations": []}
    source = tmp_path / "sessions.jsonl"
    source.write_text(json.dumps(good) + "\n{broken\n")

    assert main(["import", str(source), "--database-url", url]) == 3
    err = capsys.readouterr().err
    assert "Imported 1 sessions, 0 operations" in err
    assert "line 2: not JSON" in err

    assert main(["import", str(tmp_path / "missing.json"), "--database-url", url]) == 2


def test_serve_refuses_several_workers_on_sqlite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'workers.db'}"

    assert main(["serve", "--workers", "2", "--database-url", url]) == 2
    assert "--workers needs PostgreSQL" in capsys.readouterr().err
