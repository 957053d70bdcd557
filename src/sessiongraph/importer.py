"""`sessiongraph import`: load the REST API's own JSON into the database (upsert).

Accepts a ``GET /sessions`` response (``{"sessions": [...]}`` or a list), a
``GET /sessions/{id}`` response (one session with its operations), or JSON
Lines of either. A malformed record is reported with its line and skipped;
the rest goes in, in batches of one transaction each.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from sessiongraph.db import counters
from sessiongraph.db.columns import database_clock
from sessiongraph.db.tables import SESSION_STATUSES, operations, sessions
from sessiongraph.db.writes import dialect_insert, upsert_workflows
from sessiongraph.errors import BadUserInput
from sessiongraph.inputs import (
    check_count,
    check_id,
    check_json,
    check_money,
    check_tool_name,
    parse_datetime,
    parse_decimal,
)

BATCH_SESSIONS = 200

_TEXT_FIELDS = (
    "execution_id",
    "phase_id",
    "milestone_id",
    "agent_provider",
    "agent_model",
    "workspace_path",
    "error_message",
)
_COUNT_FIELDS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")
_OPERATION_TEXT = (
    "tool_name",
    "tool_use_id",
    "tool_output",
    "message_role",
    "message_content",
    "thinking_content",
)
_OPERATION_COUNTS = ("input_tokens", "output_tokens", "total_tokens")
_FLAT_GIT = {"git_sha": "sha", "git_message": "message", "git_branch": "branch", "git_repo": "repo"}


class Malformed(ValueError):
    pass


@dataclass
class ImportReport:
    sessions: int = 0
    operations: int = 0
    workflow_ids: set[str] = field(default_factory=set)
    #: (where, reason) of every record or operation left out.
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def workflows(self) -> int:
        return len(self.workflow_ids)


@dataclass
class _Batch:
    #: (where, session row, its operation rows, its workflow's name)
    records: list[tuple[str, dict[str, Any], list[dict[str, Any]], str | None]] = field(
        default_factory=list
    )


def _no_constants(name: str) -> Any:
    raise Malformed(f"{name} is not a JSON value any database stores")


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_no_constants)


def read_records(path: Path) -> Iterator[tuple[str, Any]]:
    """(where, session record) pairs; a line that is not JSON yields a Malformed.

    ``where`` is ``line N`` in JSON Lines, ``record N`` in a single document.
    """
    text = path.read_text(encoding="utf-8")
    try:
        document = _loads(text)
    except (json.JSONDecodeError, Malformed):
        document = None
        lines = text.splitlines()
    else:
        lines = []
    if document is not None:
        for index, record in enumerate(_sessions_in(document), 1):
            yield f"record {index}", record
        return
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            parsed = _loads(line)
        except json.JSONDecodeError as error:
            yield f"line {number}", Malformed(f"not JSON: {error.msg}")
            continue
        except Malformed as error:
            yield f"line {number}", error
            continue
        for record in _sessions_in(parsed):
            yield f"line {number}", record


def _sessions_in(document: Any) -> list[Any]:
    if isinstance(document, list):
        return document
    if isinstance(document, dict) and isinstance(document.get("sessions"), list):
        return list(document["sessions"])
    return [document]


async def import_file(
    engine: AsyncEngine,
    path: Path,
    *,
    progress: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    report = ImportReport()
    batch = _Batch()
    for where, record in read_records(path):
        try:
            if isinstance(record, Malformed):
                raise record
            _add(batch, record, where, report)
        except Malformed as error:
            report.skipped.append((where, str(error)))
            continue
        except BadUserInput as error:
            report.skipped.append((where, error.message))
            continue
        if len(batch.records) >= BATCH_SESSIONS:
            await _write(engine, batch, report)
            batch = _Batch()
            if progress:
                progress(report)
    await _write(engine, batch, report)
    return report


def _add(batch: _Batch, record: Any, where: str, report: ImportReport) -> None:
    if not isinstance(record, dict):
        raise Malformed("a session record must be a JSON object")
    row = _session_row(record)
    workflow_name = _text(record.get("workflow_name"), "workflow_name")
    ops = record.get("operations") or []
    if not isinstance(ops, list):
        raise Malformed("`operations` must be a list")
    rows = []
    for index, operation in enumerate(ops):
        try:
            rows.append(_operation_row(operation, row["id"]))
        except (Malformed, BadUserInput) as error:
            reason = error.message if isinstance(error, BadUserInput) else str(error)
            report.skipped.append((where, f"session {row['id']}, operation #{index}: {reason}"))
    batch.records.append((where, row, rows, workflow_name))


def _session_row(record: dict[str, Any]) -> dict[str, Any]:
    session_id = _text(record.get("id"), "id")
    if not session_id:
        raise Malformed("`id` is missing")
    check_id(session_id, "id")
    check_json({key: value for key, value in record.items() if key != "operations"}, "session")
    status = _text(record.get("status"), "status")
    if status not in SESSION_STATUSES:
        raise Malformed(f"unknown status {status!r}")
    counts = {name: _count(record.get(name), name) or 0 for name in _COUNT_FIELDS}
    total = _count(record.get("total_tokens"), "total_tokens")
    started = _time(record.get("started_at"), "started_at")
    completed = _time(record.get("completed_at"), "completed_at")
    duration = _number(record.get("duration_seconds"), "duration_seconds")
    if duration is None and started and completed:
        duration = (completed - started).total_seconds()
    cost_by_model = record.get("cost_by_model") or {}
    if not isinstance(cost_by_model, dict):
        raise Malformed("`cost_by_model` must be an object")
    for model in cost_by_model:
        check_tool_name(str(model), "cost_by_model")
    metadata = record.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise Malformed("`metadata` must be an object")
    repos = record.get("repos") or []
    if not isinstance(repos, list) or not all(isinstance(r, str) for r in repos):
        raise Malformed("`repos` must be a list of strings")
    return {
        "id": session_id,
        "workflow_id": _text(record.get("workflow_id"), "workflow_id"),
        **{name: _text(record.get(name), name) for name in _TEXT_FIELDS},
        "status": status,
        "repos": repos,
        **counts,
        "total_tokens": total if total is not None else sum(counts.values()),
        "total_cost_usd": _money(record.get("total_cost_usd"), "total_cost_usd"),
        "cost_by_model": {
            str(model): format(_money(cost, f"cost_by_model.{model}"), "f")
            for model, cost in cost_by_model.items()
        },
        "started_at": started,
        "completed_at": completed,
        "duration_seconds": duration,
        "metadata": metadata,
    }


def _operation_row(record: Any, session_id: str) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise Malformed("an operation must be a JSON object")
    operation_id = _text(record.get("operation_id"), "operation_id")
    operation_type = _text(record.get("operation_type"), "operation_type")
    if not operation_id or not operation_type:
        raise Malformed("`operation_id` and `operation_type` are required")
    check_id(operation_id, "operation_id")
    check_json(record, "operation")
    git = record.get("git")
    if git is not None and not isinstance(git, dict):
        raise Malformed("`git` must be an object")
    flat = {key: record[name] for name, key in _FLAT_GIT.items() if record.get(name) is not None}
    if git is None and flat:
        git = flat
    tool_input = record.get("tool_input")
    if tool_input is not None and not isinstance(tool_input, dict):
        tool_input = {"raw": tool_input if isinstance(tool_input, str) else json.dumps(tool_input)}
    success = record.get("success", True)
    if success is not None and not isinstance(success, bool):
        raise Malformed("`success` must be true or false")
    return {
        "operation_id": operation_id,
        "session_id": session_id,
        "operation_type": operation_type,
        "timestamp": _time(record.get("timestamp"), "timestamp"),
        "duration_seconds": _number(record.get("duration_seconds"), "duration_seconds"),
        "success": True if success is None else success,
        **{name: _count(record.get(name), name) for name in _OPERATION_COUNTS},
        **{name: _text(record.get(name), name) for name in _OPERATION_TEXT},
        "tool_name": check_tool_name(_text(record.get("tool_name"), "tool_name"), "tool_name"),
        "tool_input": tool_input,
        "git": git,
    }


def _text(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise Malformed(f"`{name}` must be a string")


def _count(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Malformed(f"`{name}` must be a whole number")
    if isinstance(value, float) and not value.is_integer():
        raise Malformed(f"`{name}` must be a whole number, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise Malformed(f"`{name}` must be a whole number, got {value!r}") from None
    check_count(number, name)
    return number


def _number(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise Malformed(f"`{name}` must be a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise Malformed(f"`{name}` must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise Malformed(f"`{name}` must be finite")
    return number


def _money(value: Any, name: str) -> Decimal:
    amount = _decimal(value, name)
    return check_money(amount, name) or Decimal(0)


def _decimal(value: Any, name: str) -> Decimal | None:
    return None if value is None else parse_decimal(value, name)


def _time(value: Any, name: str) -> datetime | None:
    return None if value is None else parse_datetime(value, name)


async def _write(engine: AsyncEngine, batch: _Batch, report: ImportReport) -> None:
    """One transaction for the batch; should the database refuse it, record by record,
    so one bad record is reported and skipped instead of aborting the import."""
    if not batch.records:
        return
    try:
        await _store(engine, batch.records, report)
    except sa.exc.DBAPIError:
        for record in batch.records:
            try:
                await _store(engine, [record], report)
            except sa.exc.DBAPIError as error:
                reason = str(error.orig).splitlines()[0] if error.orig else type(error).__name__
                report.skipped.append((record[0], f"the database refused it: {reason}"))


#: Session columns an import does not write: kept by the database.
_NOT_IMPORTED = frozenset({"id", *counters.COUNTERS, "updated_at"})
_OPERATION_KEYS = frozenset({"id", "operation_id", "session_id"})


def _changed(table: sa.Table, stmt: Any, names: list[str]) -> sa.ColumnElement[bool]:
    """Whether the proposed row differs from the stored one in any of ``names``."""
    return sa.or_(*(table.c[name].is_distinct_from(stmt.excluded[name]) for name in names))


async def _store(
    engine: AsyncEngine,
    records: list[tuple[str, dict[str, Any], list[dict[str, Any]], str | None]],
    report: ImportReport,
) -> None:
    # The last record of a session (or operation) in one batch wins, as a later write would.
    session_rows = list({row["id"]: row for _, row, _, _ in records}.values())
    operation_rows = list(
        {op["operation_id"]: op for _, _, ops, _ in records for op in ops}.values()
    )
    workflow_names: dict[str, str | None] = {}
    for _, row, _, name in records:
        if row["workflow_id"] is not None:
            workflow_names[row["workflow_id"]] = name or workflow_names.get(row["workflow_id"])
    async with engine.begin() as conn:
        insert = dialect_insert(conn)
        if workflow_names:
            await upsert_workflows(conn, workflow_names)
        stmt = insert(sessions)
        imported = [c.name for c in sessions.c if c.name not in _NOT_IMPORTED]
        # A record that changes nothing leaves its session as it was, updated_at included.
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[sessions.c.id],
                set_={name: stmt.excluded[name] for name in imported}
                | {"updated_at": database_clock()},
                where=_changed(sessions, stmt, imported),
            ),
            session_rows,
        )
        if operation_rows:
            stmt = insert(operations)
            replaced = [c.name for c in operations.c if c.name not in _OPERATION_KEYS]
            # An operation stays with the session that first recorded it. The sessions
            # whose operations this changed get their counters counted again.
            changed = await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[operations.c.operation_id],
                    set_={name: stmt.excluded[name] for name in replaced},
                    where=sa.and_(
                        operations.c.session_id == stmt.excluded.session_id,
                        _changed(operations, stmt, replaced),
                    ),
                ).returning(operations.c.session_id),
                operation_rows,
            )
            await counters.recount(conn, set(changed.scalars()))
    report.sessions += len(session_rows)
    report.operations += len(operation_rows)
    report.workflow_ids.update(workflow_names)
