"""`sessiongraph import`: the REST API's own JSON goes in, malformed records are reported."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from sessiongraph import cli, importer
from sessiongraph.config import Settings
from sessiongraph.db.tables import operations
from sessiongraph.importer import MAX_RECORD_BYTES, import_file, read_records
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

    assert report.skipped == [("record 2 at line 48", "unknown status 'nope'")]


# -- Through the command line, as a user runs it ----------------------------------------


async def run_import(
    capsys: pytest.CaptureFixture[str], settings: Settings, path: Path, *options: str
) -> tuple[int, str]:
    """`sessiongraph import PATH` on the test's database: its exit status and stderr."""
    capsys.readouterr()
    argv = ["import", str(path), "--database-url", settings.database_url, *options]
    status = await asyncio.to_thread(cli.main, argv)
    return status, capsys.readouterr().err


def write_lines(path: Path, *lines: str | bytes) -> Path:
    path.write_bytes(b"".join((ln.encode() if isinstance(ln, str) else ln) + b"\n" for ln in lines))
    return path


def nested(levels: int) -> Any:
    """A JSON value ``levels`` deep: ``{"a": {"a": ... 1}}``."""
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return value


def operation(operation_id: str, **fields: Any) -> dict[str, Any]:
    return {"operation_id": operation_id, "operation_type": "tool_execution_started", **fields}


@asynccontextmanager
async def refused_by_the_database(engine: AsyncEngine, session_id: str) -> AsyncIterator[None]:
    """A trigger that makes the database itself refuse to store one session."""
    async with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            await conn.execute(
                sa.text(
                    f"CREATE TRIGGER refuse_one BEFORE INSERT ON sessions WHEN NEW.id = "
                    f"'{session_id}' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                )
            )
        else:
            await conn.execute(
                sa.text(
                    f"CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$ "
                    f"BEGIN IF NEW.id = '{session_id}' THEN "
                    f"RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$"
                )
            )
            await conn.execute(
                sa.text(
                    "CREATE TRIGGER refuse_one BEFORE INSERT ON sessions "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_one()"
                )
            )
    try:
        yield
    finally:
        async with engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "DROP TRIGGER refuse_one"
                    + ("" if conn.dialect.name == "sqlite" else " ON sessions")
                )
            )
            if conn.dialect.name != "sqlite":
                await conn.execute(sa.text("DROP FUNCTION refuse_one()"))


SESSIONS = "{ sessions(first: 50) { totalCount nodes { id operationCount } } }"


async def stored_sessions(gql: GraphQLClient) -> dict[str, int]:
    """Each stored session's id and operation count."""
    data = await gql(SESSIONS)
    return {node["id"]: node["operationCount"] for node in data["sessions"]["nodes"]}


async def test_a_line_nested_100000_deep_is_reported_and_the_lines_after_it_imported(
    gql: GraphQLClient, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a line of 100,000 `[` between good records
    path = write_lines(
        tmp_path / "deep.jsonl",
        json.dumps(rest_session("s-1")),
        "[" * 100_000,
        json.dumps(rest_session("s-2")),
        json.dumps(rest_session("s-3")),
    )

    # when it is imported
    status, err = await run_import(capsys, settings, path)

    # then that line is reported and skipped, the others go in
    assert status == 3, err
    assert "  line 2: nested more than 69 levels deep (stored JSON values may nest 64)" in err
    assert "Imported 3 sessions, 6 operations and 1 workflows" in err
    assert "skipped 1." in err
    assert await stored_sessions(gql) == {"s-1": 2, "s-2": 2, "s-3": 2}


async def test_one_bad_record_of_each_kind_is_reported_and_the_rest_imported(
    gql: GraphQLClient,
    engine: AsyncEngine,
    settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given good records, and between them one bad record of each kind
    deepest = nested(64)
    path = write_lines(
        tmp_path / "mixed.jsonl",
        json.dumps(rest_session("s-1")),
        "[" * 100_000,  # 2: too deep to parse
        json.dumps(rest_session("s-deep", metadata=nested(65))),  # 3: a stored value too deep
        "{not json",  # 4
        json.dumps(rest_session("s-type", repos="acme/foo")),  # 5: wrong type
        json.dumps(rest_session("s-tokens", input_tokens=2**31)),  # 6: beyond an Int
        json.dumps(rest_session("s-huge", error_message="x" * (3 * 2**20 // 2))),  # 7: too long
        b'{"id": "s-latin1", "status": "running", "agent_model": "caf\xe9"}',  # 8: not UTF-8
        r'{"id": "s-surrogate", "status": "running", "agent_model": "\ud800"}',  # 9
        '{"id": "s-digits", "status": "running", "metadata": {"n": ' + "9" * 5000 + "}}",  # 10
        json.dumps(rest_session("s-refused")),  # 11: refused by the database itself
        json.dumps(rest_session("s-2", metadata=deepest)),
        "",
        json.dumps(rest_session("s-3")),
    )

    # when it is imported
    async with refused_by_the_database(engine, "s-refused"):
        status, err = await run_import(capsys, settings, path, "--max-record-mb", "1")

    # then each bad record is reported with its line, in file order, and the rest imported
    reported = [line.strip() for line in err.splitlines() if line.startswith("  line ")]
    assert reported == [
        "line 2: nested more than 69 levels deep (stored JSON values may nest 64)",
        "line 3: `metadata` nests more than 64 levels deep",
        "line 4: not JSON: Expecting property name enclosed in double quotes at column 2",
        "line 5: `repos` must be a list of strings",
        "line 6: `input_tokens` must be a whole number from 0 to 2,147,483,647 (a GraphQL Int)",
        "line 7: longer than 1,048,576 bytes",
        "line 8: not UTF-8 text: byte 60 is not valid",
        "line 9: holds a lone UTF-16 surrogate escape (\\ud800 to \\udfff), not Unicode text",
        "line 10: not JSON this importer reads: Exceeds the limit (4300 digits) for integer "
        "string conversion",
        reported[9],
    ]
    assert reported[9].startswith("line 11: the database refused it: ")
    assert "refused by the test" in reported[9]
    assert status == 3
    assert "Imported 3 sessions, 6 operations and 1 workflows" in err
    assert "skipped 10." in err
    assert await stored_sessions(gql) == {"s-1": 2, "s-2": 2, "s-3": 2}
    data = await gql('{ session(id: "s-2") { metadata } }')
    assert data["session"]["metadata"] == deepest


async def test_an_operation_two_sessions_claim_in_one_file_stays_with_the_first(
    gql: GraphQLClient, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given two sessions of one file that both claim operation "shared"
    first = [operation("shared", tool_output="first's"), operation("a-own")]
    second = [operation("shared", tool_output="second's"), operation("b-own")]
    path = write_lines(
        tmp_path / "claims.jsonl",
        json.dumps(rest_session("s-a", operations=first)),
        json.dumps(rest_session("s-b", operations=second)),
    )

    # when it is imported
    status, err = await run_import(capsys, settings, path)

    # then the first keeps it, unchanged; the second's claim is reported with both ids
    assert status == 3
    assert (
        "  line 2: operation 'shared' is session 's-a''s (recorded first); "
        "left out of session 's-b'" in err
    )
    assert "Imported 2 sessions, 3 operations" in err
    assert await stored_sessions(gql) == {"s-a": 2, "s-b": 1}
    assert await owner_and_output(gql, "shared") == ("s-a", "first's")


async def test_an_operation_claimed_again_by_a_later_file_stays_with_its_session(
    gql: GraphQLClient, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a session that recorded operation "shared", imported
    earlier = write_lines(
        tmp_path / "earlier.jsonl",
        json.dumps(rest_session("s-a", operations=[operation("shared", tool_output="a's")])),
    )
    assert (await run_import(capsys, settings, earlier))[0] == 0

    # when a later file gives another session with the same operation id
    later = write_lines(
        tmp_path / "later.jsonl",
        json.dumps(
            rest_session(
                "s-b", operations=[operation("shared", tool_output="b's"), operation("b-own")]
            )
        ),
    )
    status, err = await run_import(capsys, settings, later)

    # then the claim is reported and not counted; the operation stays as it was
    assert status == 3
    assert (
        "operation 'shared' is session 's-a''s (recorded first); left out of session 's-b'" in err
    )
    assert "Imported 1 sessions, 1 operations" in err
    assert await stored_sessions(gql) == {"s-a": 1, "s-b": 1}
    assert await owner_and_output(gql, "shared") == ("s-a", "a's")


async def owner_and_output(gql: GraphQLClient, operation_id: str) -> tuple[str, str]:
    data = await gql(
        "{ sessions(first: 50) { nodes { id operations { nodes { operationId toolOutput } } } } }"
    )
    [found] = [
        (node["id"], op["toolOutput"])
        for node in data["sessions"]["nodes"]
        for op in node["operations"]["nodes"]
        if op["operationId"] == operation_id
    ]
    return found


# On SQLite no other writer can come in between: the import's transaction holds the
# database's write lock from its BEGIN IMMEDIATE (sessiongraph.db.writer).
@pytest.mark.postgres_only
async def test_an_operation_another_writer_takes_meanwhile_is_reported_not_counted(
    gql: GraphQLClient, engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a session stored, and a file whose session claims an operation id that
    # another writer stores for the stored session just after the importer looked it up
    await import_file(
        engine,
        write_lines(tmp_path / "other.jsonl", json.dumps(rest_session("s-other", operations=[]))),
    )
    claim = importer._claim_operations
    taken = False

    async def then_taken(conn: Any, attempts: Any) -> None:
        nonlocal taken
        await claim(conn, attempts)
        if not taken:
            taken = True
            async with engine.begin() as other:
                await other.execute(
                    sa.insert(operations),
                    {"operation_id": "raced", "session_id": "s-other", "operation_type": "x"},
                )

    monkeypatch.setattr(importer, "_claim_operations", then_taken)
    path = write_lines(
        tmp_path / "late.jsonl",
        json.dumps(rest_session("s-late", operations=[operation("raced"), operation("mine")])),
    )

    # when it is imported
    report = await import_file(engine, path)

    # then the operation stays with the other writer's session, and is not counted
    assert report.skipped == [
        (
            "record 1",
            "operation 'raced' is session 's-other''s (recorded first); "
            "left out of session 's-late'",
        )
    ]
    assert (report.sessions, report.operations) == (1, 1)
    assert await owner_and_output(gql, "raced") == ("s-other", None)
    assert (await stored_sessions(gql))["s-late"] == 1


async def test_an_operation_id_repeated_within_a_session_keeps_the_first(
    gql: GraphQLClient, engine: AsyncEngine, tmp_path: Path
) -> None:
    ops = [operation("o1", tool_output="first"), operation("o1", tool_output="again")]
    path = write_lines(tmp_path / "twice.jsonl", json.dumps(rest_session("s-1", operations=ops)))

    report = await import_file(engine, path)

    assert report.skipped == [
        ("record 1", "session s-1, operation #1: its id 'o1' is operation #0's; the first is kept")
    ]
    assert (report.sessions, report.operations) == (1, 1)
    assert await owner_and_output(gql, "o1") == ("s-1", "first")


STATE = """query ($id: String!) { session(id: $id) {
    status totalCostUsd completedAt durationSeconds inputTokens errorMessage
    operationCount updatedAt } }"""

RECORD = """mutation ($id: String!, $ops: [OperationInput!]!) {
  recordOperations(sessionId: $id, operations: $ops) { recordedOperationIds } }"""


async def test_an_older_snapshot_does_not_reopen_a_completed_session(
    gql: GraphQLClient, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a session imported running, then completed (a later snapshot moves it on)
    running = rest_session(
        "s-1",
        status="running",
        completed_at=None,
        duration_seconds=None,
        total_cost_usd="0.01",
        operations=[operation("op1")],
    )
    completed = rest_session(
        "s-1", operations=[operation("op1"), operation("op2")], error_message=None
    )
    assert (
        await run_import(capsys, settings, write_lines(tmp_path / "1.jsonl", json.dumps(running)))
    )[0] == 0
    assert (
        await run_import(capsys, settings, write_lines(tmp_path / "2.jsonl", json.dumps(completed)))
    )[0] == 0
    stored = (await gql(STATE, {"id": "s-1"}))["session"]
    assert (stored["status"], stored["totalCostUsd"], stored["operationCount"]) == (
        "COMPLETED",
        "0.0438",
        2,
    )

    # when the older, running snapshot is imported again (with an operation it had then)
    older = {**running, "operations": [operation("op1"), operation("op-then")]}
    status, err = await run_import(
        capsys, settings, write_lines(tmp_path / "3.jsonl", json.dumps(older))
    )

    # then it is reported and the session stays as it was, updatedAt included
    assert status == 3
    assert (
        "  record 1: session 's-1' is completed in the database and this older snapshot "
        "shows it running: left as stored" in err
    )
    assert "Imported 0 sessions, 0 operations" in err
    assert (await gql(STATE, {"id": "s-1"}))["session"] == stored
    # and it still refuses operations, as a completed session does
    refused = await gql.error(
        RECORD,
        {"id": "s-1", "ops": [{"operationId": "late", "operationType": "x"}]},
        code="BAD_USER_INPUT",
    )
    assert "completed" in refused["message"]


async def test_within_one_file_a_later_line_never_takes_a_session_back(
    gql: GraphQLClient, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given one file with a completed session then an older running snapshot of it, and a
    # running session then a pending snapshot of it
    path = write_lines(
        tmp_path / "snapshots.jsonl",
        json.dumps(rest_session("s-1")),
        json.dumps(rest_session("s-1", status="running", completed_at=None)),
        json.dumps(rest_session("s-2", status="running", completed_at=None)),
        json.dumps(rest_session("s-2", status="pending", completed_at=None)),
    )

    # when it is imported
    status, err = await run_import(capsys, settings, path)

    # then both later lines are reported, and each session keeps its stage
    assert status == 3
    assert "line 2: session 's-1' is completed in the database" in err
    assert "line 4: session 's-2' is running in the database" in err
    assert "Imported 2 sessions, 4 operations" in err
    data = await gql("{ sessions { nodes { id status completedAt } } }")
    assert sorted(data["sessions"]["nodes"], key=lambda n: n["id"]) == [
        {"id": "s-1", "status": "COMPLETED", "completedAt": "2026-04-18T08:02:14.500000+00:00"},
        {"id": "s-2", "status": "RUNNING", "completedAt": None},
    ]


async def test_token_counts_beyond_a_graphql_int_are_refused(
    gql: GraphQLClient, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given counts at, and just past, 2^31 - 1
    biggest = 2**31 - 1
    path = write_lines(
        tmp_path / "tokens.jsonl",
        json.dumps(
            rest_session("s-max", input_tokens=biggest, output_tokens=0, total_tokens=biggest)
        ),
        json.dumps(rest_session("s-over", output_tokens=2**31)),
        json.dumps(rest_session("s-sum", input_tokens=biggest, output_tokens=1, total_tokens=None)),
        json.dumps(
            rest_session(
                "s-op",
                operations=[
                    operation("o1", input_tokens=2**31),
                    operation("o2", total_tokens=biggest),
                ],
            )
        ),
    )

    # when it is imported
    status, err = await run_import(capsys, settings, path)

    # then what an Int cannot carry is refused, session or operation
    assert status == 3
    assert "line 2: `output_tokens` must be a whole number from 0 to 2,147,483,647" in err
    assert "line 3: `total_tokens` (absent, so the sum of the token counts) must be at most" in err
    assert "line 4: session s-op, operation #0: `input_tokens` must be a whole number" in err
    assert "Imported 2 sessions, 3 operations" in err
    data = await gql(
        "{ sessions { nodes { id inputTokens totalTokens operations { nodes { totalTokens } } } } }"
    )
    assert sorted(data["sessions"]["nodes"], key=lambda n: n["id"]) == [
        {
            "id": "s-max",
            "inputTokens": biggest,
            "totalTokens": biggest,
            "operations": {"nodes": [{"totalTokens": None}, {"totalTokens": None}]},
        },
        {
            "id": "s-op",
            "inputTokens": 1200,
            "totalTokens": 1500,
            "operations": {"nodes": [{"totalTokens": biggest}]},
        },
    ]


# -- Documents, read as a stream ----------------------------------------------------------


def record_line(text: str, session_id: str) -> int:
    """The line of a pretty-printed document where the record of ``session_id`` starts."""
    return text[: text.index(f'"id": "{session_id}"')].count("\n")


async def test_a_listing_document_streams_its_records_and_reports_bad_ones(
    gql: GraphQLClient, engine: AsyncEngine, tmp_path: Path
) -> None:
    # given a pretty-printed GET /sessions response, `total` first, with bad records
    listing = {
        "total": 5,
        "sessions": [
            rest_session("s-1"),
            rest_session("s-deep", metadata=nested(100)),
            rest_session("s-bad", input_tokens="many"),
            rest_session("s-huge", error_message="x" * 2**20),
            rest_session("s-2", notes='a string with [brackets], {braces}, "quotes" and \\ ]}'),
        ],
        "next": None,
    }
    path = tmp_path / "listing.json"
    text = json.dumps(listing, indent=2)
    path.write_text(text)

    # when it is imported
    report = await import_file(engine, path, max_record_bytes=2**20)

    # then each bad record is reported with its number and line, the others go in
    assert [where for where, _ in report.skipped] == [
        f"record 2 at line {record_line(text, 's-deep')}",
        f"record 3 at line {record_line(text, 's-bad')}",
        f"record 4 at line {record_line(text, 's-huge')}",
    ]
    assert report.skipped[0][1].startswith("nested more than 67 levels deep")
    assert "input_tokens" in report.skipped[1][1]
    assert report.skipped[2][1] == "larger than 1,048,576 characters"
    assert (report.sessions, report.operations) == (2, 4)
    assert await stored_sessions(gql) == {"s-1": 2, "s-2": 2}


async def test_a_truncated_document_keeps_the_records_before_the_cut(
    gql: GraphQLClient, engine: AsyncEngine, tmp_path: Path
) -> None:
    text = json.dumps([rest_session("s-1"), rest_session("s-2"), rest_session("s-3")], indent=2)
    path = tmp_path / "cut.json"
    path.write_text(text[: text.index('"s-3"') + 20])

    report = await import_file(engine, path)

    where = f"record 3 at line {record_line(text, 's-3')}"
    assert report.skipped == [(where, "the document ends inside this value")]
    assert await stored_sessions(gql) == {"s-1": 2, "s-2": 2}


@pytest.mark.parametrize("layout", ["json-lines", "document", "one-line document"])
def test_reading_holds_one_record_at_a_time(tmp_path: Path, layout: str) -> None:
    # given a 24 MB file of 2,000 records
    records = [rest_session(f"s-{n}", error_message="x" * 12_000) for n in range(2_000)]
    path = tmp_path / "big.json"
    if layout == "json-lines":
        path.write_text("\n".join(json.dumps(r) for r in records))
    elif layout == "document":
        path.write_text(json.dumps({"sessions": records}, indent=1))
    else:
        path.write_text(json.dumps(records))
    del records
    assert path.stat().st_size > 24_000_000

    # when it is read through, then at most a few MB are held at any time
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_records(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 2_000
    assert peak < 6_000_000


def test_the_command_line_default_record_limit_is_the_importers() -> None:
    assert cli.MAX_RECORD_MB * 2**20 == MAX_RECORD_BYTES
