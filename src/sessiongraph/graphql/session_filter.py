"""The ``SessionFilter`` input and the match inputs under it, checked and translated into
the database layer's filter tree (``sessiongraph.db.filtering``).

Everything is refused before any SQL runs, as BAD_USER_INPUT naming the argument
(``argumentName``) and the offending input field (``field``, e.g.
``filter.or[1].workflowId.in``): nesting deeper than ``MAX_LEVELS``, more than
``MAX_LEAVES`` conditions, lists longer than ``MAX_VALUES``, and values no database
could compare alike (NUL characters, floats that are not finite, an empty
``contains``, ``lastSeconds`` out of range).
"""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal
from typing import Any, NoReturn

import strawberry
from strawberry import UNSET
from strawberry.utils.str_converters import to_camel_case

from sessiongraph.db import filtering
from sessiongraph.errors import BadUserInput
from sessiongraph.graphql.scalars import JSON
from sessiongraph.graphql.types.session import SessionStatus
from sessiongraph.inputs import check_json
from sessiongraph.jsontext import READABLE_DEPTH

#: Levels of SessionFilter objects (the outermost is 1; and/or/not go one deeper).
MAX_LEVELS = 5
#: Conditions one filter may hold: each set field of a match or range input, each
#: ``status`` list, ``hasError``, each metadata key and ``equals``, and an empty
#: ``hasOperation``.
MAX_LEAVES = 50
#: Values of one ``in``, ``status`` or ``types`` list.
MAX_VALUES = 100
#: The longest ``lastSeconds``: 366 days.
MAX_LAST_SECONDS = 31_622_400


def _optional(description: str, **kwargs: Any) -> Any:
    return strawberry.field(default=UNSET, description=description, **kwargs)


@strawberry.input(
    description="Conditions on a string value; every one given must hold. A missing value "
    "(null) meets only `isNull: true`. Comparisons are exact: byte for byte, case-sensitive."
)
class StringMatch:
    eq: str | None = _optional("Equal to this string.")
    in_: list[str] | None = _optional(
        f"Equal to one of these strings (at most {MAX_VALUES}); an empty list matches nothing.",
        name="in",
    )
    prefix: str | None = _optional(
        "Starts with this string, taken literally (`%`, `_` and `\\` are plain characters)."
    )
    is_null: bool | None = _optional("true: the value is missing; false: it is present.")


@strawberry.input(description="A substring to look for in a text.")
class TextMatch:
    contains: str = strawberry.field(
        description="Occurs in the text, literally (no wildcards). Letters A-Z match either "
        "case; every other character only as it is. Must not be empty."
    )


@strawberry.input(
    description="Bounds on an instant; every one given must hold. A missing value (null) "
    "meets none."
)
class DateTimeRange:
    gt: datetime | None = _optional("After this instant.")
    gte: datetime | None = _optional("At or after this instant.")
    lt: datetime | None = _optional("Before this instant.")
    lte: datetime | None = _optional("At or before this instant.")
    last_seconds: int | None = _optional(
        f"Within this many seconds before now (1..{MAX_LAST_SECONDS:,}): at or after the "
        "database clock's time when the query runs, minus that many seconds."
    )


@strawberry.input(
    description="Bounds on an integer; every one given must hold. A missing value (null) "
    "meets none."
)
class IntRange:
    gt: int | None = _optional("Greater than this.")
    gte: int | None = _optional("Greater than or equal to this.")
    lt: int | None = _optional("Less than this.")
    lte: int | None = _optional("Less than or equal to this.")


@strawberry.input(
    description="Bounds on a number; every one given must hold (finite numbers only). A "
    "missing value (null) meets none."
)
class FloatRange:
    gt: float | None = _optional("Greater than this.")
    gte: float | None = _optional("Greater than or equal to this.")
    lt: float | None = _optional("Less than this.")
    lte: float | None = _optional("Less than or equal to this.")


@strawberry.input(
    description="Bounds on an amount, compared exactly; every one given must hold. A missing "
    "value (null) meets none."
)
class DecimalRange:
    gt: Decimal | None = _optional("Greater than this.")
    gte: Decimal | None = _optional("Greater than or equal to this.")
    lt: Decimal | None = _optional("Less than this.")
    lte: Decimal | None = _optional("Less than or equal to this.")


@strawberry.input(description="A top-level key of a session's metadata, and its value.")
class MetadataMatch:
    key: str = strawberry.field(
        description="The key, literally (dots and quotes are part of it: no path syntax)."
    )
    equals: JSON | None = _optional(
        'The key\'s value equals this JSON value, type-strictly: true is not 1 and "1" '
        "is not 1, but 1 equals 1.0; objects and arrays compare by content (object keys "
        "in any order). null matches a stored null. Absent: the key is present."
    )


@strawberry.input(
    description="Conditions on one operation; every one given must hold for the same "
    "operation. An empty match: any operation."
)
class OperationMatch:
    types: list[str] | None = _optional(
        f"Its operationType is one of these (at most {MAX_VALUES}); an empty list matches nothing."
    )
    type_prefix: str | None = _optional(
        "Its operationType starts with this string, literally and case-sensitively."
    )
    tool_name: StringMatch | None = _optional("Its toolName.")
    success: bool | None = _optional("Whether it succeeded.")
    timestamp: DateTimeRange | None = _optional("When it happened.")
    git_branch: StringMatch | None = _optional("The branch of its git facts.")
    git_repo: StringMatch | None = _optional("The repository of its git facts.")


@strawberry.input(
    description="Sessions matching every field given; `and`/`or`/`not` combine filters. A "
    "field that is null, or an empty match, filters nothing. At most "
    f"{MAX_LEVELS} levels of filters and {MAX_LEAVES} conditions (each set field of a match "
    "or range, each status list, hasError, each metadata key and equals, an empty "
    "hasOperation)."
)
class SessionFilter:
    and_: list[SessionFilter] | None = _optional(
        "Every one of these matches; an empty list matches everything.", name="and"
    )
    or_: list[SessionFilter] | None = _optional(
        "At least one of these matches; an empty list matches nothing.", name="or"
    )
    not_: SessionFilter | None = _optional(
        "This does not match (sessions with missing values included); `not: {}` matches nothing.",
        name="not",
    )
    id: StringMatch | None = _optional("The session's id.")
    workflow_id: StringMatch | None = _optional("Its workflow's id.")
    execution_id: StringMatch | None = _optional("Its workflow execution id.")
    phase_id: StringMatch | None = _optional("Its phase id.")
    milestone_id: StringMatch | None = _optional("Its milestone id.")
    status: list[SessionStatus] | None = _optional(
        f"Its status is one of these (at most {MAX_VALUES}); an empty list matches nothing."
    )
    agent_provider: StringMatch | None = _optional("Its agent provider.")
    agent_model: StringMatch | None = _optional("Its agent model.")
    repo: StringMatch | None = _optional(
        "One of its repositories (entries trimmed, blank ones dropped) meets every condition "
        "given; `isNull: true`: it has none."
    )
    started_at: DateTimeRange | None = _optional("When it started.")
    completed_at: DateTimeRange | None = _optional("When it finished.")
    updated_at: DateTimeRange | None = _optional("When it last changed (`updatedAt`).")
    input_tokens: IntRange | None = _optional("Its input tokens.")
    output_tokens: IntRange | None = _optional("Its output tokens.")
    cache_read_tokens: IntRange | None = _optional("Its tokens read from the cache.")
    cache_creation_tokens: IntRange | None = _optional("Its tokens written to the cache.")
    total_tokens: IntRange | None = _optional("All its tokens.")
    total_cost_usd: DecimalRange | None = _optional("Its total cost in US dollars.")
    duration_seconds: FloatRange | None = _optional("Its run time in seconds.")
    operation_count: IntRange | None = _optional("Its `operationCount`.")
    tool_call_count: IntRange | None = _optional("Its `toolCallCount`.")
    failed_operation_count: IntRange | None = _optional("Its `failedOperationCount`.")
    subagent_count: IntRange | None = _optional("Its `subagentCount`.")
    commit_count: IntRange | None = _optional("Its `commitCount`.")
    cache_hit_ratio: FloatRange | None = _optional(
        "cacheReadTokens / (inputTokens + cacheReadTokens + cacheCreationTokens); missing "
        "(so meeting no bound) when that sum is 0."
    )
    has_error: bool | None = _optional("true: it has an errorMessage; false: it has none.")
    error_message: TextMatch | None = _optional("Its errorMessage.")
    metadata: list[MetadataMatch] | None = _optional(
        "Every one of these holds for its metadata; an empty list filters nothing."
    )
    has_operation: OperationMatch | None = _optional("Some operation of it matches.")


_RANGES = (DateTimeRange, IntRange, FloatRange, DecimalRange)
_BOUNDS = ("gt", "gte", "lt", "lte")


def session_where(
    value: SessionFilter | None, *, argument: str = "filter"
) -> filtering.Where | None:
    """The checked filter ``value`` describes (the argument named ``argument``); None
    when it filters nothing. Raises ``BadUserInput`` at the offending field."""
    if value is None or value is UNSET:
        return None
    translation = _Translation(argument)
    return filtering.prepare(translation.session(value, argument, 1), translation.parameters)


def operation_where(
    value: OperationMatch | None, *, argument: str = "operation"
) -> filtering.Where | None:
    """The checked ``OperationMatch`` (the argument named ``argument``) as a filter whose
    shape is a ``HasOperation`` (or a constant): compile it with
    ``filtering.operation_condition``. None when it filters nothing."""
    if value is None or value is UNSET:
        return None
    translation = _Translation(argument)
    shape = filtering.simplify(translation.operation(value, argument))
    if shape == filtering.HasOperation():
        return None  # an empty match: every operation
    return filtering.Where(shape, translation.parameters.values)


def _fields(value: Any) -> list[tuple[str, str, Any]]:
    """The fields of an input object given a value: Python name, GraphQL name, value."""
    found = []
    for field in value.__strawberry_definition__.fields:
        item = getattr(value, field.python_name)
        if item is not None and item is not UNSET:
            name = field.graphql_name or to_camel_case(field.python_name)
            found.append((field.python_name, name, item))
    return found


class _Translation:
    """One filter's walk: its parameters and the conditions counted so far."""

    def __init__(self, argument: str) -> None:
        self.argument = argument
        self.parameters = filtering.Parameters()
        self.leaves = 0

    def fail(self, path: str, message: str) -> NoReturn:
        raise BadUserInput(message, argumentName=self.argument, field=path)

    def leaf(self, path: str) -> None:
        self.leaves += 1
        if self.leaves > MAX_LEAVES:
            self.fail(
                path,
                f"`{self.argument}` holds more than {MAX_LEAVES} conditions; "
                f"`{path}` is one too many",
            )

    def text(self, value: str, path: str) -> filtering.Slot:
        return self.parameters.add(self.checked_text(value, path))

    def checked_text(self, value: str, path: str) -> str:
        if "\x00" in value:
            self.fail(path, f"`{path}` must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            self.fail(path, f"`{path}` must be valid Unicode (no lone surrogates)")
        return value

    def values(self, items: list[Any], path: str, *, texts: bool = False) -> tuple[Any, ...]:
        """The distinct values of a list, in order; ``texts``: each one checked."""
        if len(items) > MAX_VALUES:
            self.fail(path, f"`{path}` holds at most {MAX_VALUES} values, got {len(items)}")
        if texts:
            for index, item in enumerate(items):
                self.checked_text(item, f"{path}[{index}]")
        return tuple(dict.fromkeys(items))

    def session(self, value: SessionFilter, path: str, level: int) -> filtering.Condition:
        if level > MAX_LEVELS:
            self.fail(
                path,
                f"`{self.argument}` nests at most {MAX_LEVELS} levels of filters; "
                f"`{path}` is level {level}",
            )
        parts: list[filtering.Condition] = []
        for python_name, name, item in _fields(value):
            at = f"{path}.{name}"
            parts.append(self.field(python_name, item, at, level))
        return filtering.All(tuple(parts))

    def field(self, python_name: str, item: Any, at: str, level: int) -> filtering.Condition:
        if python_name == "and_":
            return filtering.All(
                tuple(self.session(f, f"{at}[{i}]", level + 1) for i, f in enumerate(item))
            )
        if python_name == "or_":
            return filtering.AnyOf(
                tuple(self.session(f, f"{at}[{i}]", level + 1) for i, f in enumerate(item))
            )
        if python_name == "not_":
            return filtering.Not(self.session(item, at, level + 1))
        if python_name == "status":
            self.leaf(at)
            statuses = self.values([s.value for s in item], at)
            if not statuses:
                return filtering.FALSE
            return filtering.Status(self.parameters.add(list(statuses)))
        if python_name == "repo":
            match = self.strings(item, at)
            return filtering.Repo(match) if match is not None else filtering.FALSE
        if python_name == "has_error":
            self.leaf(at)
            return filtering.Present("error_message", bool(item))
        if python_name == "error_message":
            return self.contains(item, at)
        if python_name == "metadata":
            return filtering.All(tuple(self.metadata(m, f"{at}[{i}]") for i, m in enumerate(item)))
        if python_name == "has_operation":
            return self.operation(item, at)
        if isinstance(item, StringMatch):
            match = self.strings(item, at)
            return filtering.Text(python_name, match) if match is not None else filtering.FALSE
        if isinstance(item, _RANGES):
            return filtering.Within(python_name, self.bounds(item, at))
        raise TypeError(f"no translation for SessionFilter.{python_name}")

    def strings(self, value: StringMatch, path: str) -> filtering.Strings | None:
        """The match ``value`` describes; None when it can match nothing (``in: []``)."""
        slots: dict[str, Any] = {}
        impossible = False
        for python_name, name, item in _fields(value):
            at = f"{path}.{name}"
            self.leaf(at)
            if python_name == "in_":
                items = self.values(item, at, texts=True)
                if items:
                    slots["in_"] = self.parameters.add(list(items))
                else:
                    impossible = True
            elif python_name == "is_null":
                slots["is_null"] = bool(item)
            else:
                slots[python_name] = self.text(item, at)
        return None if impossible else filtering.Strings(**slots)

    def bounds(
        self, value: DateTimeRange | IntRange | FloatRange | DecimalRange, path: str
    ) -> filtering.Bounds:
        slots: dict[str, filtering.Slot] = {}
        for python_name, name, item in _fields(value):
            at = f"{path}.{name}"
            self.leaf(at)
            if python_name == "last_seconds":
                if not 1 <= item <= MAX_LAST_SECONDS:
                    self.fail(at, f"`{at}` must be between 1 and {MAX_LAST_SECONDS:,}, got {item}")
            elif isinstance(item, float) and not math.isfinite(item):
                self.fail(at, f"`{at}` must be a finite number, got {item}")
            slots[python_name] = self.parameters.add(item)
        return filtering.Bounds(**slots)

    def contains(self, value: TextMatch, path: str) -> filtering.Condition:
        at = f"{path}.contains"
        self.leaf(at)
        if value.contains == "":
            self.fail(at, f"`{at}` must not be empty")
        text = filtering.fold_ascii(self.checked_text(value.contains, at))
        return filtering.Contains("error_message", self.parameters.add(text))

    def metadata(self, value: MetadataMatch, path: str) -> filtering.Condition:
        self.leaf(f"{path}.key")
        key = self.text(value.key, f"{path}.key")
        if value.equals is UNSET:
            return filtering.Metadata(key, "present")
        at = f"{path}.equals"
        self.leaf(at)
        try:
            # Compared with stored values, so as deep as any reads back (older ones may
            # be deeper than what writes take now).
            equals = check_json(value.equals, at, max_depth=READABLE_DEPTH)
        except BadUserInput as error:
            self.fail(error.extensions.get("field", at), error.message)
        self.checked_json_text(equals, at)
        kind = filtering.json_kind(equals)
        if kind in ("null", "true", "false"):
            return filtering.Metadata(key, kind)
        return filtering.Metadata(key, kind, self.parameters.add(equals))

    def checked_json_text(self, value: Any, path: str) -> None:
        if isinstance(value, str):
            self.checked_text(value, path)
        elif isinstance(value, dict):
            for key, item in value.items():
                self.checked_text(key, path)
                self.checked_json_text(item, f"{path}.{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self.checked_json_text(item, f"{path}[{index}]")

    def operation(self, value: OperationMatch, path: str) -> filtering.Condition:
        given = _fields(value)
        if not given:
            self.leaf(path)  # "some operation": a condition of its own
        slots: dict[str, Any] = {}
        impossible = False
        for python_name, name, item in given:
            at = f"{path}.{name}"
            if python_name == "types":
                self.leaf(at)
                types = self.values(item, at, texts=True)
                if types:
                    slots["types"] = self.parameters.add(list(types))
                else:
                    impossible = True
            elif python_name == "type_prefix":
                self.leaf(at)
                slots["type_prefix"] = self.text(item, at)
            elif python_name == "success":
                self.leaf(at)
                slots["success"] = self.parameters.add(bool(item))
            elif python_name == "timestamp":
                bounds = self.bounds(item, at)
                if not bounds.empty:
                    slots["timestamp"] = bounds
            else:  # tool_name, git_branch, git_repo
                match = self.strings(item, at)
                if match is None:
                    impossible = True
                elif not match.empty:
                    slots[python_name] = match
        return filtering.FALSE if impossible else filtering.HasOperation(**slots)
