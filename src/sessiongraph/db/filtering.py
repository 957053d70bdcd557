"""A session filter compiled to one SQL condition, the same on SQLite and PostgreSQL.

The GraphQL layer (``graphql/session_filter.py``) turns a ``SessionFilter`` input into a
tree of the conditions below, putting each value it holds into ``Parameters`` and
keeping only the value's ``Slot`` (a numbered bind parameter) in the tree. The tree
is therefore the filter's *shape*: equal for filters that differ only in their values,
and hashable, so ``condition`` compiles it once per database and every statement
built around it is cached per shape too. ``sessions``, ``sessionsChanged``,
``sessionStats`` and ``searchOperations`` all add the same compiled condition to their
statements.

How the rules of the contract compile:

- NULL: a comparison with a NULL column is NULL, which a WHERE clause drops, so a NULL
  never satisfies a range, ``eq``, ``in`` or ``prefix``. ``not`` is two-valued: it
  compiles to ``NOT COALESCE(inner, FALSE)``, so a session whose inner condition is
  NULL matches ``not`` (under AND/OR alone, a NULL behaves as FALSE already).
- ``prefix``: ``substr(column, 1, length(:p)) = :p``, characters counted the same way
  on both databases and compared byte-wise (no LIKE: no wildcards, no collation).
- ``contains``: ASCII letters folded on both sides, other characters exact:
  SQLite's ``lower`` folds ASCII only; PostgreSQL's follows the collation, so there
  ``translate`` folds A-Z; then ``instr``/``strpos``, which match literally.
- ``repo``: an EXISTS over the JSON array's string entries (``json_each`` /
  ``jsonb_array_elements``), each stripped of the whitespace Python's ``str.strip``
  removes, blank ones skipped; every condition of the match holds for one entry.
- ``metadata``: on PostgreSQL, JSONB equality (numbers by value, objects by keys and
  values, arrays in order). On SQLite, the key is found with ``json_each`` (any key,
  literally), a scalar compared by its JSON type and value, and an object or array by
  its ``json_tree``: the sets of (path, type, value) of both sides must be equal, with
  integers and reals one type compared by value.
- ``lastSeconds``: the database clock when the statement runs (SQLite's ``'now'``,
  PostgreSQL's ``statement_timestamp()``), as a lower bound.
- ``totalCostUsd``: exact. PostgreSQL compares NUMERIC; SQLite stores money as the
  double whose shortest repr is the decimal written, so each decimal bound becomes the
  double bound that selects exactly the doubles whose decimals meet it (``MoneyBound``).
- ``hasOperation``: an EXISTS correlated on ``session_id``, the leading column of the
  timeline index. A git match that only a value meets says ``git IS NOT NULL`` as well,
  for an index of the operations with git facts. In a page (``condition(page=True)``)
  the EXISTS is tested per session as the page walks its index.

A ``Source`` says where the compiled condition reads a session from: the sessions table,
or (``Before``) a session as it was before the writes a subscriber was told of, for
``sessionsChanged`` to decide in SQL whether the session matched before and after.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from sessiongraph.db.columns import Money, MoneyBound, UTCDateTime
from sessiongraph.db.tables import operations, sessions

#: What Python's ``str.strip()`` removes, so stored repos are normalized in SQL exactly
#: as ``display.format_repos`` normalizes them.
#: (None lies beyond U+3000: scanning the 1.1 million code points took a tenth of the
#: server's start-up; test_display checks the whole range.)
WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOWER = _UPPER.lower()
_ASCII_LOWER = str.maketrans(_UPPER, _LOWER)
_SQLITE = sqlite.dialect()


def fold_ascii(text: str) -> str:
    """``text`` with A-Z lower-cased and every other character as it is."""
    return text.translate(_ASCII_LOWER)


# -- the tree ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Slot:
    """A bind parameter of a shape; its value is in the filter's ``Parameters``."""

    index: int

    @property
    def name(self) -> str:
        return f"filter_{self.index}"


class Parameters:
    """The values of a filter's slots, by bind parameter name."""

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self.values: dict[str, Any] = dict(values or {})

    def add(self, value: Any) -> Slot:
        slot = Slot(len(self.values))
        self.values[slot.name] = value
        return slot


@dataclass(frozen=True, slots=True)
class Strings:
    """A ``StringMatch``: every given condition holds. ``in_`` is a non-empty list."""

    eq: Slot | None = None
    in_: Slot | None = None
    prefix: Slot | None = None
    is_null: bool | None = None

    @property
    def empty(self) -> bool:
        return self == _NO_STRINGS


_NO_STRINGS = Strings()


@dataclass(frozen=True, slots=True)
class Bounds:
    """A range: every given bound holds; ``last_seconds`` (times only) is a lower bound
    this many seconds before the database's now."""

    gt: Slot | None = None
    gte: Slot | None = None
    lt: Slot | None = None
    lte: Slot | None = None
    last_seconds: Slot | None = None

    @property
    def empty(self) -> bool:
        return self == _NO_BOUNDS


_NO_BOUNDS = Bounds()


@dataclass(frozen=True, slots=True)
class Const:
    value: bool


TRUE = Const(True)
FALSE = Const(False)


@dataclass(frozen=True, slots=True)
class All:
    parts: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    parts: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    part: Condition


@dataclass(frozen=True, slots=True)
class Text:
    """A string column of the session (``column`` names it) against a ``StringMatch``."""

    column: str
    match: Strings


@dataclass(frozen=True, slots=True)
class Status:
    """The status is one of a non-empty list."""

    values: Slot


@dataclass(frozen=True, slots=True)
class Repo:
    """Some normalized entry of the session's repos meets ``match`` (``is_null``: none is
    left, or some is)."""

    match: Strings


@dataclass(frozen=True, slots=True)
class Within:
    """A number or time of the session (a column, or ``cache_hit_ratio``) within bounds."""

    column: str
    bounds: Bounds


@dataclass(frozen=True, slots=True)
class Present:
    """The column is (not) NULL: ``hasError``."""

    column: str
    present: bool


@dataclass(frozen=True, slots=True)
class Contains:
    """The column holds ``text`` (given with ``fold_ascii`` applied), ASCII case folded."""

    column: str
    text: Slot


#: How a metadata value is compared: presence of the key only, a JSON scalar of that
#: type, or an object or array.
JsonKind = Literal["present", "null", "true", "false", "number", "string", "object", "array"]


def json_kind(value: Any) -> JsonKind:
    """The kind of a JSON value (as the JSON scalar parses one)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    return "array"


@dataclass(frozen=True, slots=True)
class Metadata:
    """The session's metadata has the top-level ``key``, with a value equal to ``value``
    (of ``kind``; no value for presence, null, true and false)."""

    key: Slot
    kind: JsonKind
    value: Slot | None = None


@dataclass(frozen=True, slots=True)
class HasOperation:
    """Some operation of the session meets every given condition. ``types`` is a
    non-empty list."""

    types: Slot | None = None
    type_prefix: Slot | None = None
    tool_name: Strings | None = None
    success: Slot | None = None
    timestamp: Bounds | None = None
    git_branch: Strings | None = None
    git_repo: Strings | None = None


Condition = (
    Const
    | All
    | AnyOf
    | Not
    | Text
    | Status
    | Repo
    | Within
    | Present
    | Contains
    | Metadata
    | HasOperation
)


@dataclass(frozen=True, slots=True)
class Where:
    """A filter ready to run: its shape (a cache key) and its parameters' values."""

    shape: Condition
    params: Mapping[str, Any] = field(compare=False, hash=False)


def prepare(condition: Condition, parameters: Parameters) -> Where | None:
    """The filter ``condition`` describes, its constants folded; None when it filters
    nothing."""
    shape = simplify(condition)
    return None if shape == TRUE else Where(shape, dict(parameters.values))


def simplify(condition: Condition) -> Condition:
    """``condition`` with constants folded, nested ANDs and ORs flattened and empty
    matches dropped: filters that mean the same compile to the same SQL."""
    match condition:
        case All(parts) | AnyOf(parts):
            kind = type(condition)
            absorbing = FALSE if kind is All else TRUE
            kept: list[Condition] = []
            for part in parts:
                simple = simplify(part)
                if simple == absorbing:
                    return absorbing
                if isinstance(simple, kind):
                    kept.extend(simple.parts)
                elif not isinstance(simple, Const):
                    kept.append(simple)
            if not kept:
                return TRUE if kind is All else FALSE
            return kept[0] if len(kept) == 1 else kind(tuple(kept))
        case Not(part):
            simple = simplify(part)
            if isinstance(simple, Const):
                return Const(not simple.value)
            # Both NOTs coalesce, so NOT NOT x is x as a WHERE clause reads it.
            return simple.part if isinstance(simple, Not) else Not(simple)
        case Text(_, match) | Repo(match) if match.empty:
            return TRUE
        case Within(_, bounds) if bounds.empty:
            return TRUE
    return condition


# -- where a session is read from -------------------------------------------------------------


class Source:
    """Where the compiled condition reads a session: the sessions table, by default.

    A subclass reads a session as it was before a write (``sessionsChanged``). Sources
    are compared by identity: each is one cache key of ``condition``.
    """

    def column(self, name: str, dialect: str) -> sa.ColumnElement[Any]:
        return sessions.c[name]

    def operation_conditions(
        self, operation: sa.FromClause, dialect: str
    ) -> list[sa.ColumnElement[bool]]:
        """What makes an operation the session's, besides its ``session_id``."""
        return []


SESSIONS = Source()


class Before(Source):
    """Sessions as they were before the writes of a change (``sessionsChanged``).

    The statement reads the changes from a JSON object parameter named ``changes``, by
    session id: ``{"<id>": {"new": bool, "first_row": int | null, "before": {column:
    value}}}`` (``changed_sessions_json`` writes it), joined as ``relation``. A column
    in ``before`` had that value (in the database's stored form); any other had the
    value it has now. Only the operations stored before ``first_row`` (``operations.id``)
    were there. A ``new`` session did not exist: it matched nothing.
    """

    def __init__(self) -> None:
        changes = sa.bindparam("changes", type_=sa.Text)
        self._relations = {
            "sqlite": sa.func.json_each(changes).table_valued("key", "value").alias("change"),
            "postgresql": sa.func.jsonb_each(sa.cast(changes, postgresql.JSONB))
            .table_valued("key", "value")
            .alias("change"),
        }

    def relation(self, dialect: str) -> sa.TableValuedAlias:
        """The changes, one row per session: ``key`` its id, ``value`` its change."""
        return self._relations[dialect]

    def _field(self, dialect: str, name: str) -> sa.ColumnElement[Any]:
        """The text (SQLite: the SQL value) of the session's change under ``name``."""
        value = self.relation(dialect).c.value
        if dialect == "sqlite":
            return sa.func.json_extract(value, f"$.{name}")
        return value.op("->>")(sa.literal(name, sa.Text))

    def new(self, dialect: str) -> sa.ColumnElement[bool]:
        flag = self._field(dialect, "new")
        return flag == 1 if dialect == "sqlite" else flag == "true"

    def column(self, name: str, dialect: str) -> sa.ColumnElement[Any]:
        now = sessions.c[name]
        if dialect == "sqlite":
            path = f"$.before.{name}"
            value = self.relation(dialect).c.value
            held = sa.func.json_type(value, path).is_not(None)
            return sa.case((held, sa.func.json_extract(value, path)), else_=now)
        before = self.relation(dialect).c.value.op("->")(sa.literal("before", sa.Text))
        held = before.op("?", is_comparison=True)(sa.literal(name, sa.Text))
        was = sa.cast(before.op("->>")(sa.literal(name, sa.Text)), now.type)
        return sa.case((held, was), else_=now)

    def operation_conditions(
        self, operation: sa.FromClause, dialect: str
    ) -> list[sa.ColumnElement[bool]]:
        first = self._field(dialect, "first_row")
        if dialect != "sqlite":
            first = sa.cast(first, sa.BigInteger)
        return [sa.or_(first.is_(None), operation.c.id < first)]


BEFORE = Before()


def changed_sessions_json(
    changes: Mapping[str, tuple[bool, int | None, Mapping[str, Any]]], dialect: str
) -> str:
    """The ``changes`` parameter of ``Before``: by session id, whether it is new, the first
    row of its new operations and the values its columns had, as events carry them
    (times in ISO 8601, amounts as decimal strings), converted to what the database
    stores: on SQLite, UTCDateTime's text and Money's double."""
    written: dict[str, Any] = {}
    for session_id, (new, first_row, before) in changes.items():
        values: dict[str, Any] = {}
        for name, value in before.items():
            if name not in sessions.c:
                continue  # a column of another version: read as it is now
            values[name] = _stored(sessions.c[name].type, value, dialect)
        written[session_id] = {"new": new, "first_row": first_row, "before": values}
    return json.dumps(written, separators=(",", ":"))


def _stored(type_: sa.types.TypeEngine[Any], value: Any, dialect: str) -> Any:
    if value is None or dialect != "sqlite":
        return value
    if isinstance(type_, UTCDateTime):
        return type_.process_bind_param(datetime.fromisoformat(value), _SQLITE)
    if isinstance(type_, Money):
        return float(Decimal(value))
    return value


def _cache_hit_ratio(source: Source, dialect: str) -> sa.ColumnElement[Any]:
    # In floating point from the start: BIGINT sums could overflow on PostgreSQL, and
    # both databases then divide the same doubles.
    def real(name: str) -> sa.ColumnElement[Any]:
        return sa.cast(source.column(name, dialect), sa.Float)

    total = real("input_tokens") + real("cache_read_tokens") + real("cache_creation_tokens")
    # "/" as written: SQLAlchemy's true division would cast to NUMERIC on PostgreSQL.
    divide = real("cache_read_tokens").op("/", return_type=sa.Float)
    return divide(sa.func.nullif(total, 0, type_=sa.Float))


_COMPUTED = {"cache_hit_ratio": _cache_hit_ratio}


# -- compiling ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def condition(
    shape: Condition, dialect: str, source: Source = SESSIONS, *, page: bool = False
) -> sa.ColumnElement[bool]:
    """The SQL of ``shape`` for ``dialect`` (``sqlite`` or ``postgresql``), reading sessions
    from ``source``; bind parameters named by the shape's slots.

    ``page``: for a statement that walks sessions in the index order of a list up to
    a ``LIMIT``, testing the condition on each session it reaches: a cost per row
    walked, the same at any table size. The condition then leaves the walk to that
    index. On PostgreSQL, ``hasOperation`` stays a subquery per session (turned into
    a join, it reads every matching operation; and, as a join, lets the walk run in
    parallel workers, which take longer to start than such a page takes). On SQLite,
    ranges are marked likely: without statistics of values it takes any two-sided
    range for a narrow one, and would read the sessions a range holds through its
    index and sort them (a cost of 1..10 dollars: three quarters of them); a range
    on the list's own order column still bounds the walk.
    """
    return _Compiler(dialect, source, page=page).compile(shape)


@functools.lru_cache(maxsize=128)
def operation_condition(
    shape: HasOperation | Const, dialect: str, operation: sa.FromClause = operations
) -> sa.ColumnElement[bool]:
    """The SQL of an ``OperationMatch`` on the operation rows of ``operation`` themselves
    (not "some operation of the session"): for statements that list operations."""
    if isinstance(shape, Const):
        return sa.true() if shape.value else sa.false()
    return _all(_Compiler(dialect, SESSIONS).operation(shape, operation))


class _Compiler:
    def __init__(self, dialect: str, source: Source, *, page: bool = False) -> None:
        self.sqlite = dialect == "sqlite"
        self.dialect = dialect
        self.source = source
        self.page = page

    def compile(self, shape: Condition) -> sa.ColumnElement[bool]:
        match shape:
            case Const(value):
                return sa.true() if value else sa.false()
            case All(parts):
                return sa.and_(*(self.compile(p) for p in parts))
            case AnyOf(parts):
                return sa.or_(*(self.compile(p) for p in parts))
            case Not(part):
                return sa.not_(sa.func.coalesce(self.compile(part), sa.false()))
            case Text(column, match):
                return _all(self._strings(self._column(column), match, _type(column)))
            case Status(values):
                return self._column("status").in_(_bind(values, sa.String, expanding=True))
            case Repo(match):
                return self._repo(match)
            case Within(column, bounds):
                within = self._within(self._value(column), bounds, _type(column))
                if self.page and self.sqlite:
                    within = [sa.func.likely(c, type_=sa.Boolean) for c in within]
                return _all(within)
            case Present(column, present):
                held = self._column(column)
                return held.is_not(None) if present else held.is_(None)
            case Contains(column, text):
                return self._contains(self._column(column), _bind(text, sa.Text))
            case Metadata():
                return self._metadata(shape)
            case HasOperation():
                return self._has_operation(shape)
        raise TypeError(f"not a filter condition: {shape!r}")

    def _column(self, name: str) -> sa.ColumnElement[Any]:
        return self.source.column(name, self.dialect)

    def _value(self, name: str) -> sa.ColumnElement[Any]:
        computed = _COMPUTED.get(name)
        return computed(self.source, self.dialect) if computed else self._column(name)

    def _strings(
        self, value: sa.ColumnElement[Any], match: Strings, type_: sa.types.TypeEngine[Any]
    ) -> list[sa.ColumnElement[bool]]:
        conditions: list[sa.ColumnElement[bool]] = []
        if match.eq is not None:
            conditions.append(value == _bind(match.eq, type_))
        if match.in_ is not None:
            conditions.append(value.in_(_bind(match.in_, type_, expanding=True)))
        if match.prefix is not None:
            prefix = _bind(match.prefix, sa.Text)
            conditions.append(sa.func.substr(value, 1, sa.func.length(prefix)) == prefix)
        if match.is_null is not None:
            conditions.append(value.is_(None) if match.is_null else value.is_not(None))
        return conditions

    def _within(
        self, value: sa.ColumnElement[Any], bounds: Bounds, type_: sa.types.TypeEngine[Any]
    ) -> list[sa.ColumnElement[bool]]:
        conditions: list[sa.ColumnElement[bool]] = []
        for slot, operator in (
            (bounds.gt, "gt"),
            (bounds.gte, "gte"),
            (bounds.lt, "lt"),
            (bounds.lte, "lte"),
        ):
            if slot is None:
                continue
            bound = _bind(slot, MoneyBound(operator) if isinstance(type_, Money) else type_)
            conditions.append(_COMPARE[operator](value, bound))
        if bounds.last_seconds is not None:
            conditions.append(value >= self._seconds_ago(_bind(bounds.last_seconds, sa.Integer)))
        return conditions

    def _seconds_ago(self, seconds: sa.BindParameter[Any]) -> sa.ColumnElement[Any]:
        return seconds_ago(self.dialect, seconds)

    def _contains(
        self, value: sa.ColumnElement[Any], text: sa.BindParameter[Any]
    ) -> sa.ColumnElement[bool]:
        if self.sqlite:  # SQLite's lower() folds A-Z only
            return sa.func.instr(sa.func.lower(value), text) > 0
        return sa.func.strpos(sa.func.translate(value, _UPPER, _LOWER), text) > 0

    def _json_of(self, document: sa.ColumnElement[Any], json_type: str) -> sa.ColumnElement[Any]:
        """``document`` if it is JSON of that type (``array``, ``object``), else NULL: what
        other writers may have left must not fail the statement."""
        if self.sqlite:
            inner = sa.case((sa.func.json_type(document) == json_type, document))
            return sa.case((sa.func.json_valid(document) == 1, inner))
        return sa.case((sa.func.jsonb_typeof(document) == json_type, document))

    def _repo(self, match: Strings) -> sa.ColumnElement[bool]:
        repos = repo_entries(self._column("repos"), self.dialect)
        checks = self._strings(repos.entry, Strings(match.eq, match.in_, match.prefix), sa.Text())
        if match.is_null and checks:  # no entry left, yet one meeting the checks
            return sa.false()

        def some(*conditions: sa.ColumnElement[bool]) -> sa.ColumnElement[bool]:
            return (
                sa.select(sa.literal_column("1"))
                .select_from(repos.table)
                .where(*repos.where, *conditions)
                .exists()
            )

        return sa.not_(some()) if match.is_null else some(*checks)

    def _metadata(self, shape: Metadata) -> sa.ColumnElement[bool]:
        document = self._json_of(self._column("metadata"), "object")
        key = _bind(shape.key, sa.Text)
        if not self.sqlite:
            if shape.kind == "present":
                return document.op("?", is_comparison=True)(key)
            assert shape.value is not None or shape.kind in ("null", "true", "false")
            value: sa.ColumnElement[Any] = (
                sa.cast(_bind(shape.value, JsonText()), postgresql.JSONB)
                if shape.value is not None
                else sa.cast(sa.literal(shape.kind), postgresql.JSONB)
            )
            return document.op("->")(key) == value
        member = (
            sa.func.json_each(document).table_valued("key", "type", "atom", "value").alias("meta")
        )
        conditions: list[sa.ColumnElement[bool]] = [member.c.key == key]
        if shape.kind in ("null", "true", "false"):
            conditions.append(member.c.type == shape.kind)
        elif shape.kind == "number":
            assert shape.value is not None
            conditions += [
                member.c.type.in_(("integer", "real")),
                member.c.atom == _bind(shape.value, SqliteNumber()),
            ]
        elif shape.kind == "string":
            assert shape.value is not None
            conditions += [member.c.type == "text", member.c.atom == _bind(shape.value, sa.Text)]
        elif shape.kind in ("object", "array"):
            assert shape.value is not None
            wanted = _bind(shape.value, JsonText())
            conditions += [
                member.c.type == shape.kind,
                _same_json_sqlite(member.c.value, wanted),
            ]
        return sa.select(sa.literal_column("1")).select_from(member).where(*conditions).exists()

    def _has_operation(self, shape: HasOperation) -> sa.ColumnElement[bool]:
        operation = operations.alias()
        conditions = [
            operation.c.session_id == self._column("id"),
            *self.source.operation_conditions(operation, self.dialect),
            *self.operation(shape, operation),
        ]
        rows: sa.Select[Any] = (
            sa.select(sa.literal_column("1")).select_from(operation).where(*conditions)
        )
        if self.page and not self.sqlite:
            # PostgreSQL never turns an EXISTS with an OFFSET into a join (SQLite never
            # turns one into a join at all).
            rows = rows.offset(sa.literal_column("0"))
        return rows.exists()

    def operation(
        self, shape: HasOperation, operation: sa.FromClause
    ) -> list[sa.ColumnElement[bool]]:
        """The conditions ``shape`` puts on one row of ``operation`` (operations or an alias)."""
        conditions: list[sa.ColumnElement[bool]] = []
        kind = operation.c.operation_type
        if shape.types is not None:
            conditions.append(kind.in_(_bind(shape.types, sa.Text, expanding=True)))
        if shape.type_prefix is not None:
            prefix = _bind(shape.type_prefix, sa.Text)
            conditions.append(sa.func.substr(kind, 1, sa.func.length(prefix)) == prefix)
        if shape.tool_name is not None:
            conditions += self._strings(operation.c.tool_name, shape.tool_name, sa.Text())
        if shape.success is not None:
            conditions.append(operation.c.success == _bind(shape.success, sa.Boolean))
        if shape.timestamp is not None:
            conditions += self._within(
                operation.c.timestamp, shape.timestamp, operations.c.timestamp.type
            )
        git_value = False
        for key, match in (("branch", shape.git_branch), ("repo", shape.git_repo)):
            if match is not None:
                conditions += self._strings(self._git(operation, key), match, sa.Text())
                git_value = git_value or _needs_value(match)
        if git_value:
            # Implied by the match; said so that an index of the operations with git
            # facts can serve it (no planner sees through the JSON functions).
            conditions.append(operation.c.git.is_not(None))
        return conditions

    def _git(self, operation: sa.FromClause, key: str) -> sa.ColumnElement[Any]:
        """A string the operation's git facts hold under ``key``; NULL for anything else."""
        git = operation.c.git
        if self.sqlite:
            path = f"$.{key}"
            is_text = sa.func.json_type(git, path) == "text"
            text = sa.case((is_text, sa.func.json_extract(git, path)))
            return sa.case((sa.func.json_valid(git) == 1, text))
        name = sa.literal(key, sa.Text)
        return sa.case((sa.func.jsonb_typeof(git.op("->")(name)) == "string", git.op("->>")(name)))


@dataclass(frozen=True, slots=True)
class RepoEntries:
    """A session's repositories as the contract normalizes them: the rows of ``table``
    that meet ``where`` are its string entries that are not blank, ``entry`` each one
    stripped (as ``str.strip`` strips). Duplicates are left to the caller."""

    table: sa.FromClause
    entry: sa.ColumnElement[Any]
    where: tuple[sa.ColumnElement[bool], ...]


def repo_entries(repos: sa.ColumnElement[Any], dialect: str) -> RepoEntries:
    """The entries of ``repos`` (a session's JSON column, or what stands for it), a
    table-valued function of it, for a correlated subquery or a lateral join."""
    if dialect == "sqlite":
        document = sa.case(
            (sa.func.json_valid(repos) == 1, sa.case((sa.func.json_type(repos) == "array", repos)))
        )
        table = sa.func.json_each(document).table_valued("type", "atom").alias("repo")
        is_text = table.c.type == "text"
        entry = sa.func.trim(table.c.atom, WHITESPACE)
    else:
        document = sa.case((sa.func.jsonb_typeof(repos) == "array", repos))
        table = sa.func.jsonb_array_elements(document).table_valued("value").alias("repo")
        is_text = sa.func.jsonb_typeof(table.c.value) == "string"
        entry = sa.func.btrim(table.c.value.op("#>>")(sa.literal_column("'{}'")), WHITESPACE)
    return RepoEntries(table, entry, (is_text, entry != ""))


def _same_json_sqlite(
    stored: sa.ColumnElement[Any], wanted: sa.ColumnElement[Any]
) -> sa.ColumnElement[bool]:
    """Whether two JSON texts hold the same value, key order aside: the same set of
    (path, type, value) over all their nodes. Integers and reals are one type, and the
    set operation compares them by value (1 = 1.0)."""

    def nodes(document: sa.ColumnElement[Any]) -> sa.Select[Any]:
        tree = sa.func.json_tree(document).table_valued("fullkey", "type", "atom").alias()
        kind = sa.case((tree.c.type.in_(("integer", "real")), "number"), else_=tree.c.type)
        return sa.select(tree.c.fullkey, kind, tree.c.atom)

    def none_left(compound: sa.CompoundSelect[Any]) -> sa.ColumnElement[bool]:
        rows = compound.subquery()
        return sa.not_(sa.select(sa.literal_column("1")).select_from(rows).exists())

    return sa.and_(
        none_left(sa.except_(nodes(stored), nodes(wanted))),
        none_left(sa.except_(nodes(wanted), nodes(stored))),
    )


def seconds_ago(dialect: str, seconds: sa.BindParameter[Any]) -> sa.ColumnElement[Any]:
    """The database clock when the statement runs, ``seconds`` before: ``lastSeconds``."""
    if dialect == "sqlite":
        # The text UTCDateTime stores (microseconds); SQLite's clock has milliseconds.
        ago = sa.func.strftime("%Y-%m-%d %H:%M:%f", "now", sa.func.printf("-%d seconds", seconds))
        return ago.op("||")(sa.literal("000"))
    interval = sa.func.make_interval(0, 0, 0, 0, 0, 0, seconds)
    return sa.func.statement_timestamp() - interval


def _needs_value(match: Strings) -> bool:
    """Whether only a value (not NULL) can meet ``match``."""
    if match.is_null is not None:
        return not match.is_null
    return match.eq is not None or match.in_ is not None or match.prefix is not None


def _all(conditions: list[sa.ColumnElement[bool]]) -> sa.ColumnElement[bool]:
    return sa.and_(*conditions) if conditions else sa.true()


def _type(column: str) -> sa.types.TypeEngine[Any]:
    return sessions.c[column].type if column in sessions.c else sa.Float()


def _bind(
    slot: Slot,
    type_: sa.types.TypeEngine[Any] | type[sa.types.TypeEngine[Any]],
    *,
    expanding: bool = False,
) -> sa.BindParameter[Any]:
    return sa.bindparam(slot.name, type_=type_, expanding=expanding)


_COMPARE = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}


# -- parameter types ----------------------------------------------------------------------------


class JsonText(sa.TypeDecorator[Any]):
    """A JSON value sent as its text (JSON null included, never SQL NULL)."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class SqliteNumber(sa.TypeDecorator[Any]):
    """A JSON number as SQLite's JSON functions read it: an integer beyond 64 bits is
    a real there (and would not bind as an integer)."""

    impl = sa.Float
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            return float(value)
        return value
