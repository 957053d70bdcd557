"""`sessiongraph import`: load the REST API's own JSON into the database (upsert).

Accepts a ``GET /sessions`` response (``{"sessions": [...]}`` or a list), a
``GET /sessions/{id}`` response (one session with its operations), or JSON
Lines of either. The file is read as a stream, a line (or a record of one
document) at a time, so memory stays bounded whatever its size. Any record that
cannot go in — not JSON, nested too deeply, too large, of the wrong shape, holding
values the database would refuse, or refused by the database itself — is reported
with its location and skipped; the rest goes in, in batches of one transaction each.

What a record may change is decided against what is stored (see ``_store``): an
operation stays with the session that first recorded it, and a snapshot never moves
a session back to an earlier stage (pending, running, finished).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, Literal, TextIO

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sessiongraph.db import counters, writer
from sessiongraph.db.columns import database_clock
from sessiongraph.db.tables import SESSION_STATUSES, operations, sessions
from sessiongraph.db.writes import (
    MAX_TOKEN_COUNT,
    TERMINAL_STATUSES,
    dialect_insert,
    upsert_workflows,
)
from sessiongraph.errors import BadUserInput
from sessiongraph.inputs import (
    MAX_JSON_DEPTH,
    check_id,
    check_json,
    check_money,
    check_session_id,
    check_tool_name,
    parse_datetime,
    parse_decimal,
)
from sessiongraph.jsontext import deeper_than, nesting_exceeds

#: A record's own levels above its stored values (``metadata``, ``tool_input``, ``git``,
#: nested at most ``max_json_depth``): the session, its operations, one operation.
_RECORD_LEVELS = 3
#: A JSON Lines line may wrap its records in a list or in ``{"sessions": [...]}``.
_LINE_LEVELS = _RECORD_LEVELS + 2
#: A line of JSON Lines, or a record of a document, larger than this is skipped unread.
MAX_RECORD_BYTES = 64 * 2**20

#: A batch (one transaction) ends at whichever of these it reaches first.
BATCH_SESSIONS = 200
BATCH_OPERATIONS = 5_000
BATCH_BYTES = 8 * 2**20
#: Skipped records the report lists (all are counted, and all are passed to ``on_skip``).
MAX_LISTED_SKIPS = 10_000

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
    #: Session records and operations stored as the file gives them (inserted, updated
    #: or already so); a session given twice counts twice.
    sessions: int = 0
    operations: int = 0
    workflow_ids: set[str] = field(default_factory=set)
    #: (where, reason) of the first ``MAX_LISTED_SKIPS`` records or operations left out.
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: How many records or operations were left out, listed or not.
    skipped_count: int = 0

    @property
    def workflows(self) -> int:
        return len(self.workflow_ids)


# -- Reading ---------------------------------------------------------------------------

#: (where, a parsed record or the Malformed it is, size of its text in characters)
Read = tuple[str, Any, int]

_CHUNK = 2**20
#: A \\uD800-\\uDFFF escape: the value may hold a lone surrogate, which is not Unicode text.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def read_records(
    path: Path, *, max_record_bytes: int = MAX_RECORD_BYTES, max_json_depth: int = MAX_JSON_DEPTH
) -> Iterator[Read]:
    """The records of a file, in file order; a record that cannot be read is a Malformed.

    A file is one JSON document when its first line starts a list or an object and
    either is its only line or is unfinished with a second line that is not a JSON value
    by itself; else it is JSON Lines. ``where`` is ``line N`` (``line N, record K`` when
    a line holds several) in JSON Lines, ``record N at line L`` in a document (``record
    N`` when it is on one line).
    """
    layout = _layout(path, max_record_bytes, max_json_depth + _LINE_LEVELS)
    if layout == "json-lines":
        yield from _json_lines_records(path, max_record_bytes, max_json_depth)
    else:
        yield from _document_records(
            path, max_record_bytes, max_json_depth, one_line=layout == "one-line"
        )


def _layout(
    path: Path, limit: int, line_depth: int
) -> Literal["json-lines", "one-line", "document"]:
    """How the file is laid out, from the first two lines that are not blank (of each,
    at most a chunk is held)."""
    found: list[tuple[bytes, bool]] = []
    with path.open("rb") as file:
        for _, line, whole in _lines(file, min(limit, _CHUNK)):
            if line.strip():
                found.append((line.strip(), whole))
                if len(found) == 2:
                    break
    if not found or found[0][0][:1] not in (b"[", b"{"):
        return "json-lines"
    (first, first_whole), second = found[0], found[1] if len(found) == 2 else None
    if second is None:
        return "one-line"  # streamed, whatever its length
    if not first_whole or not _unfinished(first, line_depth):
        return "json-lines"
    text, whole = second
    return "json-lines" if whole and _complete(text, line_depth) else "document"


def _no_constants(name: str) -> Any:
    raise Malformed(f"{name} is not a JSON value any database stores")


def _parse(
    text: str, *, depth_limit: int | None, json_depth: int, first_line: int | None = None
) -> Any:
    """The JSON value of ``text``; Malformed if it is not one this importer stores.

    ``depth_limit`` None: the caller has checked the nesting already. ``first_line``:
    where ``text`` starts in a document, so that an error names its line.
    """
    if depth_limit is not None and nesting_exceeds(text, depth_limit):
        raise Malformed(_too_deep(depth_limit, json_depth))
    try:
        value = json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as error:
        at = (
            f"column {error.colno}"
            if first_line is None
            else f"line {first_line + error.lineno - 1}"
        )
        raise Malformed(f"not JSON: {error.msg} at {at}") from None
    except RecursionError:  # not reached past the depth check; never a crash either way
        raise Malformed("nested too deeply to parse") from None
    except Malformed:
        raise
    except ValueError as error:  # e.g. an integer of more than 4,300 digits
        raise Malformed(f"not JSON this importer reads: {str(error).split(':')[0]}") from None
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise Malformed(
                "holds a lone UTF-16 surrogate escape (\\ud800 to \\udfff), not Unicode text"
            ) from None
    return value


def _too_deep(levels: int, json_depth: int) -> str:
    return f"nested more than {levels} levels deep (stored JSON values may nest {json_depth})"


def _sessions_in(document: Any) -> list[Any]:
    if isinstance(document, list):
        return document
    if isinstance(document, dict) and isinstance(document.get("sessions"), list):
        return list(document["sessions"])
    return [document]


def _lines(file: BinaryIO, limit: int) -> Iterator[tuple[int, bytes, bool]]:
    """(number, line, whether whole) of every line. Of a line longer than ``limit`` bytes
    only the first ``limit`` + 1 are read; the rest is passed over without being held."""
    number = 0
    while line := file.readline(limit + 1):
        number += 1
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        whole = len(line) <= limit or line.endswith(b"\n")
        if not whole:
            while (rest := file.readline(_CHUNK)) and not rest.endswith(b"\n"):
                pass
        yield number, line, whole


def _decoded(line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Malformed(f"not UTF-8 text: byte {error.start + 1} is not valid") from None


def _json_lines_records(path: Path, limit: int, json_depth: int) -> Iterator[Read]:
    line_depth = json_depth + _LINE_LEVELS
    with path.open("rb") as file:
        for number, line, whole in _lines(file, limit):
            where = f"line {number}"
            if not whole:
                yield where, Malformed(f"longer than {limit:,} bytes"), 0
                continue
            if not line.strip():
                continue
            try:
                records = _sessions_in(
                    _parse(_decoded(line), depth_limit=line_depth, json_depth=json_depth)
                )
            except Malformed as error:
                yield where, error, len(line)
                continue
            size = len(line) // max(1, len(records))
            if len(records) == 1:
                yield where, records[0], size
                continue
            for index, record in enumerate(records, 1):
                yield f"{where}, record {index}", record, size


def _unfinished(line: bytes, line_depth: int) -> bool:
    """Whether ``line`` is the start of a JSON value that goes on past it."""
    try:
        text = _decoded(line)
    except Malformed:
        return False
    if nesting_exceeds(text, line_depth):
        return False
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        return error.pos >= len(text)
    except ValueError:
        return False
    return False


def _complete(line: bytes, line_depth: int) -> bool:
    """Whether ``line`` is a JSON value by itself."""
    try:
        _parse(_decoded(line), depth_limit=line_depth, json_depth=line_depth)
    except Malformed:
        return False
    return True


class _Broken(Exception):
    """The document's structure is broken at ``line`` (in the record ``where``, if any):
    nothing after can be read."""

    def __init__(self, reason: str, line: int, where: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.line, self.where = reason, line, where


_SPACE = re.compile(r"[ \t\r\n]*+")
#: Text up to the next bracket or quote, whole strings on the way included.
_PLAIN = re.compile(r'(?:[^\[\]{}"]++|"[^"\\]*+(?:\\.[^"\\]*+)*+")*+', re.DOTALL)
#: The rest of a string, up to its closing quote or to the end of what is read (short of
#: a final backslash, whose escaped character is still to come).
_STRING_REST = re.compile(r'[^"\\]*+(?:\\.[^"\\]*+)*+', re.DOTALL)
#: A number or literal (or garbage), up to the next structural character.
_SCALAR = re.compile(r'[^ \t\r\n,:\[\]{}"]*+')
#: What bytes that are not UTF-8 decode to (``errors="surrogateescape"``).
_UNDECODED = re.compile("[\udc80-\udcff]")


class _Cursor:
    """A position in a text file read a chunk at a time.

    Text before the cursor is dropped as reading goes on, except from ``mark`` on (the
    record being read), which is kept until it outgrows ``limit`` (``oversize``).
    """

    def __init__(self, file: TextIO, limit: int, json_depth: int, *, one_line: bool) -> None:
        self.file, self.limit, self.one_line = file, limit, one_line
        self.json_depth = json_depth
        #: How deeply a record may nest: its own levels, then its stored values'.
        self.record_depth = json_depth + _RECORD_LEVELS
        self.text, self.pos = "", 0
        self.mark: int | None = None
        self.oversize = False
        self._line, self._counted = 1, 0

    def more(self) -> bool:
        """Reads on; False at the end of the file."""
        keep = self.pos if self.mark is None else self.mark
        self._count_lines(keep)
        self.text = self.text[keep:]
        self.pos -= keep
        self._counted -= keep
        if self.mark is not None:
            self.mark -= keep
        size = _CHUNK
        if self.mark is not None:
            # Doubling while a record is kept, so that a large one is copied O(1) times,
            # but never reading far past the limit.
            kept = len(self.text) - self.mark
            size = max(_CHUNK, min(len(self.text), self.limit + 1 - kept))
        chunk = self.file.read(size)
        if not chunk:
            return False
        self.text += chunk
        if self.mark is not None and len(self.text) - self.mark > self.limit:
            self.mark, self.oversize = None, True
        return True

    def line(self) -> int:
        """The line of the cursor."""
        self._count_lines(self.pos)
        return self._line

    def record(self, index: int, line: int) -> str:
        """Where the record ``index`` that starts on ``line`` is."""
        return f"record {index}" if self.one_line else f"record {index} at line {line}"

    def _count_lines(self, index: int) -> None:
        if index > self._counted:
            self._line += self.text.count("\n", self._counted, index)
            self._counted = index

    def peek(self) -> str:
        """The next character that is not white space ('' at the end), the cursor on it."""
        while True:
            match = _SPACE.match(self.text, self.pos)
            assert match is not None
            self.pos = match.end()
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.more():
                return ""

    def keep(self) -> None:
        """Keep the text from the cursor on, as a record."""
        self.mark, self.oversize = self.pos, False

    def kept(self) -> str | None:
        """The text kept since ``keep`` (None if it grew too large), and stop keeping."""
        text = None
        if self.mark is not None and self.pos - self.mark <= self.limit:
            text = self.text[self.mark : self.pos]
        self.mark = None
        return text

    def skip_value(self, depth_limit: int) -> bool:
        """Moves past the JSON value at the cursor; whether it nests deeper than
        ``depth_limit``. ``_Broken`` if there is none, or the file ends inside it."""
        char = self.peek()
        if char in ("[", "{"):
            return self._skip_container(depth_limit)
        if char == '"':
            self.pos += 1
            self._skip_string_rest()
            return False
        if char in ("", "]", "}", ":", ","):
            raise _Broken("expected a value", self.line())
        while True:  # a number or a literal; the parser judges it
            match = _SCALAR.match(self.text, self.pos)
            assert match is not None
            self.pos = match.end()
            if self.pos < len(self.text) or not self.more():
                return False

    def read_string(self) -> str | None:
        """The string at the cursor (a key), moving past it; None if it is not one."""
        held = self.mark is not None
        offset = self.pos - self.mark if self.mark is not None else 0
        if not held:
            self.mark = self.pos
        self.pos += 1
        self._skip_string_rest()
        text = None if self.mark is None else self.text[self.mark + offset : self.pos]
        if not held:
            self.mark = None
        try:
            value = json.loads(text) if text is not None else None
        except ValueError:
            return None
        return value if isinstance(value, str) else None

    def _skip_string_rest(self) -> None:
        while True:
            match = _STRING_REST.match(self.text, self.pos)
            assert match is not None
            self.pos = match.end()
            if self.pos < len(self.text) and self.text[self.pos] == '"':
                self.pos += 1
                return
            if not self.more():
                raise _Broken("the document ends inside a string", self.line())

    def _skip_container(self, depth_limit: int) -> bool:
        text, pos = self.text, self.pos
        depth = deepest = 0
        in_string = False
        while True:
            if in_string:
                match = _STRING_REST.match(text, pos)
                assert match is not None
                pos = match.end()
                if pos < len(text) and text[pos] == '"':
                    pos, in_string = pos + 1, False
                    continue
            else:
                match = _PLAIN.match(text, pos)
                assert match is not None
                pos = match.end()
                if pos < len(text):
                    char = text[pos]
                    pos += 1
                    if char == '"':
                        in_string = True
                    elif char in "[{":
                        depth += 1
                        deepest = max(deepest, depth)
                    else:
                        depth -= 1
                        if depth == 0:
                            self.pos = pos
                            return deepest > depth_limit
                    continue
            self.pos = pos
            if not self.more():
                raise _Broken("the document ends inside this value", self.line())
            text, pos = self.text, self.pos


def _document_records(path: Path, limit: int, json_depth: int, *, one_line: bool) -> Iterator[Read]:
    with path.open(encoding="utf-8", errors="surrogateescape", newline="") as file:
        cursor = _Cursor(file, limit, json_depth, one_line=one_line)
        try:
            if cursor.peek() == "\ufeff":
                cursor.pos += 1
            if cursor.peek() == "[":
                cursor.pos += 1
                yield from _listed_records(cursor)
            else:
                yield from _object_records(cursor)
            if cursor.peek():
                raise _Broken("text after the end of the JSON document", cursor.line())
        except _Broken as broken:
            yield broken.where or f"line {broken.line}", Malformed(broken.reason), 0


def _listed_records(cursor: _Cursor) -> Iterator[Read]:
    """The records of a list, from just after its ``[`` to just after its ``]``."""
    index = 0
    while True:
        char = cursor.peek()
        if char == "]":
            cursor.pos += 1
            return
        if char == ",":
            cursor.pos += 1
            continue
        if not char:
            raise _Broken("the document ends inside its list of sessions", cursor.line())
        index += 1
        line = cursor.line()
        where = cursor.record(index, line)
        cursor.keep()
        try:
            deep = cursor.skip_value(cursor.record_depth)
        except _Broken as broken:
            raise _Broken(broken.reason, broken.line, where) from None
        yield _document_record(where, cursor, line, deep=deep)


def _object_records(cursor: _Cursor) -> Iterator[Read]:
    """A ``GET /sessions`` response's listed records, or the object as one record."""
    line = cursor.line()
    cursor.keep()
    cursor.pos += 1
    listed, deep = False, False
    while True:
        char = cursor.peek()
        if char == "}":
            cursor.pos += 1
            break
        if char == ",":
            cursor.pos += 1
            continue
        if char != '"':
            raise _Broken("expected a key or the end of the object", cursor.line())
        key = cursor.read_string()
        if cursor.peek() != ":":
            raise _Broken("expected `:` after a key", cursor.line())
        cursor.pos += 1
        if key == "sessions" and not listed and cursor.peek() == "[":
            listed = True
            cursor.mark = None
            cursor.pos += 1
            yield from _listed_records(cursor)
        else:
            deep = cursor.skip_value(cursor.record_depth - 1) or deep
    if not listed:
        yield _document_record(cursor.record(1, line), cursor, line, deep=deep)


def _document_record(where: str, cursor: _Cursor, line: int, *, deep: bool) -> Read:
    oversize = cursor.oversize
    text = cursor.kept()
    if oversize or text is None:
        return where, Malformed(f"larger than {cursor.limit:,} characters"), 0
    if deep:
        return where, Malformed(_too_deep(cursor.record_depth, cursor.json_depth)), 0
    if _UNDECODED.search(text):
        return where, Malformed("not UTF-8 text"), len(text)
    try:
        parsed = _parse(text, depth_limit=None, json_depth=cursor.json_depth, first_line=line)
        return where, parsed, len(text)
    except Malformed as error:
        return where, error, len(text)


# -- Records to rows -------------------------------------------------------------------


@dataclass
class _Entry:
    """One record of the file as it goes to the database."""

    where: str
    #: Why the record, or some of its operations, is left out: reported once it is written.
    notes: list[str] = field(default_factory=list)
    #: The session row; None when the record is left out.
    row: dict[str, Any] | None = None
    operations: list[dict[str, Any]] = field(default_factory=list)
    workflow_name: str | None = None
    size: int = 0


def _entry(where: str, record: Any, size: int, json_depth: int) -> _Entry:
    entry = _Entry(where, size=size)
    try:
        if isinstance(record, Malformed):
            raise record
        _read_session(entry, record, json_depth)
    except Malformed as error:
        entry.row, entry.notes = None, [str(error)]
    except BadUserInput as error:
        entry.row, entry.notes = None, [error.message]
    return entry


def _read_session(entry: _Entry, record: Any, json_depth: int) -> None:
    if not isinstance(record, dict):
        raise Malformed("a session record must be a JSON object")
    row = _session_row(record, json_depth)
    workflow_name = _text(record.get("workflow_name"), "workflow_name")
    ops = record.get("operations") or []
    if not isinstance(ops, list):
        raise Malformed("`operations` must be a list")
    rows: list[dict[str, Any]] = []
    first_index: dict[str, int] = {}
    for index, operation in enumerate(ops):
        try:
            op = _operation_row(operation, row["id"], json_depth)
        except (Malformed, BadUserInput) as error:
            reason = error.message if isinstance(error, BadUserInput) else str(error)
            entry.notes.append(f"session {row['id']}, operation #{index}: {reason}")
            continue
        earlier = first_index.setdefault(op["operation_id"], index)
        if earlier != index:
            entry.notes.append(
                f"session {row['id']}, operation #{index}: its id "
                f"{op['operation_id']!r} is operation #{earlier}'s; the first is kept"
            )
            continue
        rows.append(op)
    entry.row, entry.operations, entry.workflow_name = row, rows, workflow_name


def _session_row(record: dict[str, Any], json_depth: int) -> dict[str, Any]:
    session_id = _text(record.get("id"), "id")
    if not session_id:
        raise Malformed("`id` is missing")
    check_session_id(session_id, "id")
    # Depth: the reader's bound, never met here; each stored value's is checked below.
    fields = {key: value for key, value in record.items() if key != "operations"}
    check_json(fields, "session", max_depth=json_depth + _LINE_LEVELS)
    status = _text(record.get("status"), "status")
    if status not in SESSION_STATUSES:
        raise Malformed(f"unknown status {status!r}")
    workflow_id = _text(record.get("workflow_id"), "workflow_id")
    if workflow_id is not None:
        check_id(workflow_id, "workflow_id")
    counts = {name: _count(record.get(name), name) or 0 for name in _COUNT_FIELDS}
    total = _count(record.get("total_tokens"), "total_tokens")
    if total is None:
        total = sum(counts.values())
        if total > MAX_TOKEN_COUNT:
            raise Malformed(
                f"`total_tokens` (absent, so the sum of the token counts) must be at most "
                f"{MAX_TOKEN_COUNT:,} (a GraphQL Int), got {total:,}"
            )
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
    _check_depth(metadata, "metadata", json_depth)
    repos = record.get("repos") or []
    if not isinstance(repos, list) or not all(isinstance(r, str) for r in repos):
        raise Malformed("`repos` must be a list of strings")
    return {
        "id": session_id,
        "workflow_id": workflow_id,
        **{name: _text(record.get(name), name) for name in _TEXT_FIELDS},
        "status": status,
        "repos": repos,
        **counts,
        "total_tokens": total,
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


def _operation_row(record: Any, session_id: str, json_depth: int) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise Malformed("an operation must be a JSON object")
    operation_id = _text(record.get("operation_id"), "operation_id")
    operation_type = _text(record.get("operation_type"), "operation_type")
    if not operation_id or not operation_type:
        raise Malformed("`operation_id` and `operation_type` are required")
    check_id(operation_id, "operation_id")
    check_json(record, "operation", max_depth=json_depth + _LINE_LEVELS)  # as for the session
    git = record.get("git")
    if git is not None and not isinstance(git, dict):
        raise Malformed("`git` must be an object")
    flat = {key: record[name] for name, key in _FLAT_GIT.items() if record.get(name) is not None}
    if git is None and flat:
        git = flat
    _check_depth(git, "git", json_depth)
    tool_input = record.get("tool_input")
    if tool_input is not None and not isinstance(tool_input, dict):
        tool_input = {"raw": tool_input if isinstance(tool_input, str) else json.dumps(tool_input)}
    _check_depth(tool_input, "tool_input", json_depth)
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


def _check_depth(value: Any, name: str, json_depth: int) -> None:
    if deeper_than(value, json_depth):
        raise Malformed(f"`{name}` nests more than {json_depth} levels deep")


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
    if not 0 <= number <= MAX_TOKEN_COUNT:
        raise Malformed(
            f"`{name}` must be a whole number from 0 to {MAX_TOKEN_COUNT:,} (a GraphQL Int)"
        )
    return number


def _number(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise Malformed(f"`{name}` must be a number")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
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


# -- Writing ---------------------------------------------------------------------------


@dataclass
class _Batch:
    entries: list[_Entry] = field(default_factory=list)
    session_ids: set[str] = field(default_factory=set)
    operations: int = 0
    size: int = 0

    def add(self, entry: _Entry) -> None:
        self.entries.append(entry)
        if entry.row is not None:
            self.session_ids.add(entry.row["id"])
        self.operations += len(entry.operations)
        self.size += entry.size

    def full(self) -> bool:
        return (
            len(self.entries) >= BATCH_SESSIONS
            or self.operations >= BATCH_OPERATIONS
            or self.size >= BATCH_BYTES
        )


async def import_file(
    engine: AsyncEngine,
    path: Path,
    *,
    progress: Callable[[ImportReport], None] | None = None,
    on_skip: Callable[[str, str], None] | None = None,
    max_record_bytes: int = MAX_RECORD_BYTES,
    max_json_depth: int = MAX_JSON_DEPTH,
) -> ImportReport:
    """Import ``path``; each record or operation left out is passed to ``on_skip`` in file
    order, as soon as the batch holding it is written. Stored JSON values may nest
    ``max_json_depth`` levels (``Settings.max_json_depth``)."""
    report = ImportReport()

    async def flush(batch: _Batch) -> None:
        await _write(engine, batch.entries, report)
        for entry in batch.entries:
            for note in entry.notes:
                report.skipped_count += 1
                if len(report.skipped) < MAX_LISTED_SKIPS:
                    report.skipped.append((entry.where, note))
                if on_skip:
                    on_skip(entry.where, note)
        if progress:
            progress(report)

    batch = _Batch()
    records = read_records(path, max_record_bytes=max_record_bytes, max_json_depth=max_json_depth)
    for where, record, size in records:
        entry = _entry(where, record, size, max_json_depth)
        # A session given again is decided against what its first record stored.
        if entry.row is not None and entry.row["id"] in batch.session_ids:
            await flush(batch)
            batch = _Batch()
        batch.add(entry)
        if batch.full():
            await flush(batch)
            batch = _Batch()
    await flush(batch)
    return report


async def _write(engine: AsyncEngine, entries: list[_Entry], report: ImportReport) -> None:
    """One transaction for the batch; should the database refuse it, record by record,
    so one bad record is reported and skipped instead of aborting the import."""
    stored = [entry for entry in entries if entry.row is not None]
    if not stored:
        return
    try:
        await _store(engine, stored, report)
    except (sa.exc.StatementError, UnicodeError) as error:
        _raise_if_disconnected(error)
        for entry in stored:
            try:
                await _store(engine, [entry], report)
            except (sa.exc.StatementError, UnicodeError) as refusal:
                _raise_if_disconnected(refusal)
                entry.notes.insert(0, f"the database refused it: {_reason(refusal)}")


def _raise_if_disconnected(error: Exception) -> None:
    """A lost database is not one record's fault: the import stops."""
    if isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated:
        raise error


def _reason(error: Exception) -> str:
    orig = getattr(error, "orig", None)
    text = str(orig if orig is not None else error).strip()
    return text.splitlines()[0] if text else type(error).__name__


#: Session columns an import does not write: kept by the database.
_NOT_IMPORTED = frozenset({"id", *counters.COUNTERS, "updated_at"})
_OPERATION_KEYS = frozenset({"id", "operation_id", "session_id"})
#: Owners are looked up this many operation ids at a time (bound parameters are limited).
_OWNER_LOOKUP = 5_000


#: How far a session has come: a snapshot never takes it back to an earlier stage.
_STAGES = {"pending": 0, "running": 1} | dict.fromkeys(TERMINAL_STATUSES, 2)


def _stage(status: sa.ColumnElement[Any]) -> sa.ColumnElement[int]:
    return sa.case(_STAGES, value=status, else_=2)


def _changed(table: sa.Table, stmt: Any, names: list[str]) -> sa.ColumnElement[bool]:
    """Whether the proposed row differs from the stored one in any of ``names``."""
    return sa.or_(*(table.c[name].is_distinct_from(stmt.excluded[name]) for name in names))


@dataclass
class _Attempt:
    """What one transaction decides for an entry; applied to it only once it commits."""

    entry: _Entry
    row: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    #: Older than the stored session: left out whole.
    stale: bool = False
    #: Its operations that are its own (not another session's).
    operations: list[dict[str, Any]] = field(default_factory=list)
    #: Of those, the ids stored for this session before the transaction.
    preexisting: set[str] = field(default_factory=set)
    #: Of those, the ids now stored as given.
    stored: set[str] = field(default_factory=set)


async def _store(engine: AsyncEngine, entries: list[_Entry], report: ImportReport) -> None:
    """Write the entries (each of a different session) in one transaction.

    A record older than its stored session — at an earlier stage: pending, running,
    finished — is left out whole. An operation stays with the session that first
    recorded it, in the database or earlier in this batch; another session's claim is
    left out. Both are noted on the entry once the transaction has committed, and only
    what is stored is counted.
    """
    attempts = [_Attempt(entry, entry.row) for entry in entries if entry.row is not None]
    async with writer.transaction(engine) as conn:
        statuses = await _stored_statuses(conn, [attempt.row["id"] for attempt in attempts])
        for attempt in attempts:
            old, new = statuses.get(attempt.row["id"]), attempt.row["status"]
            if old is not None and _STAGES[new] < _STAGES[old]:
                attempt.stale = True
                attempt.notes.append(
                    f"session {attempt.row['id']!r} is {old} in the database and this "
                    f"older snapshot shows it {new}: left as stored"
                )
        live = [attempt for attempt in attempts if not attempt.stale]
        await _claim_operations(conn, live)
        await _upsert_sessions(conn, live)
        await _upsert_operations(conn, live)
    for attempt in attempts:
        attempt.entry.notes.extend(attempt.notes)
        if not attempt.stale:
            report.sessions += 1
            report.operations += len(attempt.stored)
            if attempt.row["workflow_id"] is not None:
                report.workflow_ids.add(attempt.row["workflow_id"])


async def _stored_statuses(conn: AsyncConnection, session_ids: list[str]) -> dict[str, str]:
    """The status of each of these sessions that is stored. On PostgreSQL their rows are
    locked (in id order, as every importer locks them), so that no completion comes in
    between; on SQLite the upsert's stage condition keeps the rule all the same."""
    if not session_ids:
        return {}
    stmt = (
        sa.select(sessions.c.id, sessions.c.status)
        .where(sessions.c.id.in_(session_ids))
        .order_by(sessions.c.id)
    )
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return {row.id: row.status for row in await conn.execute(stmt)}


async def _claim_operations(conn: AsyncConnection, attempts: list[_Attempt]) -> None:
    """Each attempt's own operations: not stored for another session, nor claimed by an
    earlier entry of the batch."""
    ids = [op["operation_id"] for attempt in attempts for op in attempt.entry.operations]
    stored = await _owners(conn, ids)
    owners = dict(stored)  # and, as the batch goes, the first entry to claim each
    for attempt in attempts:
        session_id = attempt.row["id"]
        for op in attempt.entry.operations:
            operation_id = op["operation_id"]
            if stored.get(operation_id) == session_id:
                attempt.preexisting.add(operation_id)
            owner = owners.setdefault(operation_id, session_id)
            if owner == session_id:
                attempt.operations.append(op)
            else:
                attempt.notes.append(_taken(operation_id, owner, session_id))


def _taken(operation_id: str, owner: str, claimant: str) -> str:
    return (
        f"operation {operation_id!r} is session {owner!r}'s (recorded first); "
        f"left out of session {claimant!r}"
    )


async def _owners(conn: AsyncConnection, operation_ids: list[str]) -> dict[str, str]:
    """The session of each of these operations that is stored."""
    owners: dict[str, str] = {}
    for start in range(0, len(operation_ids), _OWNER_LOOKUP):
        chunk = operation_ids[start : start + _OWNER_LOOKUP]
        stored = await conn.execute(
            sa.select(operations.c.operation_id, operations.c.session_id).where(
                operations.c.operation_id.in_(chunk)
            )
        )
        owners.update({row.operation_id: row.session_id for row in stored})
    return owners


async def _upsert_sessions(conn: AsyncConnection, attempts: list[_Attempt]) -> None:
    if not attempts:
        return
    workflow_names: dict[str, str | None] = {}
    for attempt in attempts:
        workflow_id = attempt.row["workflow_id"]
        if workflow_id is not None:
            name = attempt.entry.workflow_name
            workflow_names[workflow_id] = name or workflow_names.get(workflow_id)
    if workflow_names:
        await upsert_workflows(conn, workflow_names)
    stmt = dialect_insert(conn)(sessions)
    imported = [c.name for c in sessions.c if c.name not in _NOT_IMPORTED]
    # A record that changes nothing leaves its session as it was, updated_at included;
    # the stage condition keeps the merge rule should the session have moved on since
    # _stored_statuses read it (SQLite takes no row locks).
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[sessions.c.id],
            set_={name: stmt.excluded[name] for name in imported}
            | {"updated_at": database_clock()},
            where=sa.and_(
                _changed(sessions, stmt, imported),
                _stage(sessions.c.status) <= _stage(stmt.excluded.status),
            ),
        ),
        [attempt.row for attempt in attempts],
    )


async def _upsert_operations(conn: AsyncConnection, attempts: list[_Attempt]) -> None:
    """Store the attempts' operations and note which are now stored as given (inserted,
    changed or already so). The sessions whose operations changed get their counters
    counted again."""
    rows = [op for attempt in attempts for op in attempt.operations]
    if not rows:
        return
    stmt = dialect_insert(conn)(operations)
    replaced = [c.name for c in operations.c if c.name not in _OPERATION_KEYS]
    written = await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[operations.c.operation_id],
            set_={name: stmt.excluded[name] for name in replaced},
            # Never moved to another session, whatever another writer stored meanwhile.
            where=sa.and_(
                operations.c.session_id == stmt.excluded.session_id,
                _changed(operations, stmt, replaced),
            ),
        ).returning(operations.c.operation_id, operations.c.session_id),
        rows,
    )
    changed: dict[str, str] = {row.operation_id: row.session_id for row in written}
    await counters.recount(conn, set(changed.values()))
    # Not written and not stored before: another writer stored it since _owners read.
    raced = [
        op["operation_id"]
        for attempt in attempts
        for op in attempt.operations
        if op["operation_id"] not in changed and op["operation_id"] not in attempt.preexisting
    ]
    owners = await _owners(conn, raced)
    for attempt in attempts:
        session_id = attempt.row["id"]
        for op in attempt.operations:
            operation_id = op["operation_id"]
            owner = changed.get(operation_id) or owners.get(operation_id)
            if operation_id in attempt.preexisting or owner == session_id:
                attempt.stored.add(operation_id)
            elif owner is not None:
                attempt.notes.append(_taken(operation_id, owner, session_id))
