"""`sessiongraph import`: the REST API's own JSON goes in, malformed records are reported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from sessiongraph.importer import import_file
from tests.helpers import GraphQLClient


def rest_session(session_id: str, **fields: Any) -> dict[str, Any]:
    """A session as GET /sessions/{id} returns it, display fields and all."""
    return {
        "id": session_id,
        "workflow_id": "wf-1",
        "workflow_name": "Release",
        "status": "completed",
        "agent_provider": "claude",
        "agent_model": "claude-sonnet-4-6",
        "agent_model_display": "Sonnet 4.6",
        "repos": ["acme/foo"],
        "input_tokens": 1200,
        "output_tokens": 300,
        "cache_creation_tokens": 0,
        "cache_read_tokens": 0,
        "total_tokens": 1500,
        "total_tokens_display": "1.5k",
        "total_cost_usd": "0.0438",
        "cost_by_model": {"claude-sonnet-4-6": "0.0438"},
        "started_at": "2026-04-18 08:00:00",
        "completed_at": "2026-04-18 08:02:14.500000+00:00",
        "duration_seconds": 134.5,
        "metadata": {"trigger": "push"},
        "operations": [
            {
                "operation_id": f"{session_id}-op1",
                "operation_type": "tool_execution_started",
                "timestamp": "2026-04-18 08:00:01",
                "tool_name": "Bash",
                "tool_input": {"raw": "ls -la"},
            },
            {
                "operation_id": f"{session_id}-op2",
                "operation_type": "git_commit",
                "timestamp": "2026-04-18T08:00:02Z",
                "git_sha": "abc123",
                "git_message": "fix",
            },
        ],
        **fields,
    }


QUERY = """query ($id: String!) { session(id: $id) {
    id status workflowName totalCostUsd costByModel { model costUsd } startedAt completedAt
    durationSeconds metadata operationCount
    operations { nodes { operationId timestamp toolInput git { sha message } gitSha } } } }"""


async def test_detail_response_is_imported(
    gql: GraphQLClient, engine: AsyncEngine, tmp_path: Path
) -> None:
    path = tmp_path / "detail.json"
    path.write_text(json.dumps(rest_session("s-1")))

    report = await import_file(engine, path)

    assert (report.sessions, report.operations, report.workflows, report.skipped) == (1, 2, 1, [])
    data = await gql(QUERY, {"id": "s-1"})
    assert data["session"] == {
        "id": "s-1",
        "status": "COMPLETED",
        "workflowName": "Release",
        "totalCostUsd": "0.0438",
        "costByModel": [{"model": "claude-sonnet-4-6", "costUsd": "0.0438"}],
        "startedAt": "2026-04-18T08:00:00+00:00",
        "completedAt": "2026-04-18T08:02:14.500000+00:00",
        "durationSeconds": 134.5,
        "metadata": {"trigger": "push"},
        "operationCount": 2,
        "operations": {
            "nodes": [
                {
                    "operationId": "s-1-op1",
                    "timestamp": "2026-04-18T08:00:01+00:00",
                    "toolInput": {"raw": "ls -la"},
                    "git": None,
                    "gitSha": None,
                },
                {
                    "operationId": "s-1-op2",
                    "timestamp": "2026-04-18T08:00:02+00:00",
                    "toolInput": None,
                    "git": {"sha": "abc123", "message": "fix"},
                    "gitSha": "abc123",
                },
            ]
        },
    }


async def test_list_response_is_imported_and_a_second_import_updates(
    gql: GraphQLClient, engine: AsyncEngine, tmp_path: Path
) -> None:
    path = tmp_path / "list.json"
    listing = {"sessions": [rest_session("s-1"), rest_session("s-2")], "total": 2}
    path.write_text(json.dumps(listing))
    await import_file(engine, path)

    listing["sessions"][0]["status"] = "failed"
    path.write_text(json.dumps(listing))
    report = await import_file(engine, path)

    assert (report.sessions, report.operations) == (2, 4)
    data = await gql("{ sessions { totalCount nodes { id status operationCount } } }")
    assert sorted(data["sessions"]["nodes"], key=lambda n: n["id"]) == [
        {"id": "s-1", "status": "FAILED", "operationCount": 2},
        {"id": "s-2", "status": "COMPLETED", "operationCount": 2},
    ]


async def test_json_lines_skip_and_report_malformed_records(
    gql: GraphQLClient, engine: AsyncEngine, tmp_path: Path
) -> None:
    bad_operation = rest_session("s-3")
    bad_operation["operations"].append({"operation_type": "no_id"})
    lines = [
        json.dumps(rest_session("s-1")),
        "{this is not json",
        json.dumps({"sessions": [rest_session("s-2")]}),
        json.dumps(rest_session("s-x", status="archived")),
        "",
        json.dumps(rest_session("s-y", total_cost_usd="lots")),
        json.dumps(bad_operation),
    ]
    path = tmp_path / "sessions.jsonl"
    path.write_text("\n".join(lines) + "\n")

    report = await import_file(engine, path)

    assert (report.sessions, report.operations) == (3, 6)
    assert [where for where, _ in report.skipped] == ["line 2", "line 4", "line 6", "line 7"]
    assert "not JSON" in report.skipped[0][1]
    assert "archived" in report.skipped[1][1]
    assert "total_cost_usd" in report.skipped[2][1]
    assert "operation #2" in report.skipped[3][1]
    data = await gql("{ sessions { totalCount } }")
    assert data == {"sessions": {"totalCount": 3}}


async def test_values_a_database_would_refuse_are_skipped_not_fatal(
    gql: GraphQLClient, engine: AsyncEngine, tmp_path: Path
) -> None:
    bad_records = [
        rest_session("s-nul", agent_model="a\u0000b"),
        rest_session("s-big", input_tokens=10**20),
        rest_session("s-old", started_at="0001-01-01T00:30:00+01:00"),
        rest_session("s-rich", total_cost_usd="12345678901"),
        rest_session("s-long" + "x" * 200),
        rest_session(
            "s-flag",
            status="completed",
            operations=[{"operation_id": "f", "operation_type": "t", "success": "false"}],
        ),
    ]
    lines = [json.dumps(r) for r in bad_records]
    lines.insert(2, '{"id": "s-nan", "status": "running", "metadata": {"x": NaN}}')
    lines.append(json.dumps(rest_session("s-good")))
    path = tmp_path / "hostile.jsonl"
    path.write_text("\n".join(lines) + "\n")

    report = await import_file(engine, path)

    assert report.sessions == 2  # s-good, and s-flag without its bad operation
    assert len(report.skipped) == 7
    data = await gql("{ sessions { nodes { id operationCount } } }")
    assert sorted((n["id"], n["operationCount"]) for n in data["sessions"]["nodes"]) == [
        ("s-flag", 0),
        ("s-good", 2),
    ]


async def test_single_document_reports_record_numbers(engine: AsyncEngine, tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text(json.dumps([rest_session("s-1"), rest_session("s-2", status="nope")], indent=2))

    report = await import_file(engine, path)

    assert report.skipped == [("record 2", "unknown status 'nope'")]
