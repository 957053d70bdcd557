"""``sessionStats``: what the sessions a filter matches add up to (SPEC §5).

A ``SessionStats`` answers each selected field with the aggregates of ``db/stats.py``:
``count`` and ``totals`` (and ``duration`` but its percentiles) share one statement,
percentiles take one more, and so does each of ``byStatus``, ``costByModel``, a
``groupBy`` and every part of a ``timeSeries`` — a fixed number whatever the number of
sessions, groups or buckets. Percentiles are read only when one is selected.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, TypeVar, cast

import strawberry
from strawberry import UNSET

from sessiongraph import display
from sessiongraph.db import stats
from sessiongraph.db.stats import Aggregate, Durations, Grouping, Scope, Totals
from sessiongraph.errors import BadUserInput
from sessiongraph.graphql.arguments import given
from sessiongraph.graphql.context import Info
from sessiongraph.graphql.fields import (
    LEAST_COST,
    SIZE,
    field_plan,
    python_name,
    selected_on,
)
from sessiongraph.graphql.ordering import OrderDirection
from sessiongraph.graphql.plan import FieldPlan
from sessiongraph.graphql.scalars import BigInt
from sessiongraph.graphql.types.session import ModelCost, SessionStatus
from sessiongraph.graphql.types.tool import ToolUsage

T = TypeVar("T")

MAX_GROUPS = 200
MAX_TOOLS = 100
MAX_BUCKETS = 1000
MAX_UTC_OFFSET_MINUTES = 840


@strawberry.type(description="Tokens and cost summed over sessions.")
class UsageTotals:
    input_tokens: BigInt = strawberry.field(description="Input tokens.")
    output_tokens: BigInt = strawberry.field(description="Output tokens.")
    cache_creation_tokens: BigInt = strawberry.field(description="Tokens written to the cache.")
    cache_read_tokens: BigInt = strawberry.field(description="Tokens read from the cache.")
    total_tokens: BigInt = strawberry.field(description="All tokens.")
    total_cost_usd: Decimal = strawberry.field(description="Total cost in US dollars, exact.")

    @strawberry.field(description="All tokens for display: 1.2k, 3.4M, 5.6B.")
    def total_tokens_display(self) -> str:
        return display.format_total_tokens(self.total_tokens)

    @strawberry.field(description="Total cost for display: $12.50, $1.2k, $3.4M.")
    def total_cost_display(self) -> str:
        return display.format_total_cost(self.total_cost_usd)

    @staticmethod
    def of(totals: Totals) -> UsageTotals:
        return UsageTotals(
            input_tokens=BigInt(totals.input_tokens),
            output_tokens=BigInt(totals.output_tokens),
            cache_creation_tokens=BigInt(totals.cache_creation_tokens),
            cache_read_tokens=BigInt(totals.cache_read_tokens),
            total_tokens=BigInt(totals.total_tokens),
            total_cost_usd=totals.total_cost_usd,
        )


def _percentile(p: int) -> Any:
    return strawberry.field(description=f"{p}th percentile (continuous), seconds.")


@strawberry.type(
    description="Run times of the sessions that have one (a finite durationSeconds); "
    "the figures are null when none has. Float figures are rounded to 6 places."
)
class DurationStats:
    count: int = strawberry.field(description="Sessions with a duration.")
    avg_seconds: float | None = strawberry.field(description="Mean, seconds.")
    min_seconds: float | None = strawberry.field(description="Shortest, seconds.")
    max_seconds: float | None = strawberry.field(description="Longest, seconds.")
    p50_seconds: float | None = _percentile(50)
    p90_seconds: float | None = _percentile(90)
    p95_seconds: float | None = _percentile(95)
    p99_seconds: float | None = _percentile(99)

    @strawberry.field(description="Mean for display: 2m 14s; — when unknown.")
    def avg_display(self) -> str:
        return display.format_duration_seconds(self.avg_seconds)

    @strawberry.field(description="Median for display.")
    def p50_display(self) -> str:
        return display.format_duration_seconds(self.p50_seconds)

    @strawberry.field(description="90th percentile for display.")
    def p90_display(self) -> str:
        return display.format_duration_seconds(self.p90_seconds)

    @strawberry.field(description="95th percentile for display.")
    def p95_display(self) -> str:
        return display.format_duration_seconds(self.p95_seconds)

    @strawberry.field(description="99th percentile for display.")
    def p99_display(self) -> str:
        return display.format_duration_seconds(self.p99_seconds)

    @staticmethod
    def of(durations: Durations) -> DurationStats:
        found = durations.percentiles
        return DurationStats(
            count=durations.count,
            avg_seconds=durations.avg,
            min_seconds=durations.min,
            max_seconds=durations.max,
            p50_seconds=found.get(50),
            p90_seconds=found.get(90),
            p95_seconds=found.get(95),
            p99_seconds=found.get(99),
        )


@strawberry.type(description="How many sessions have a status.")
class StatusCount:
    status: SessionStatus = strawberry.field(description="The status.")
    count: int = strawberry.field(description="Sessions with it.")


def _status_counts(counts: Mapping[str, int] | None) -> list[StatusCount]:
    """Every status in the enum's order, zeros included."""
    found = counts or {}
    return [StatusCount(status=s, count=found.get(s.name.lower(), 0)) for s in SessionStatus]


def _model_costs(costs: list[tuple[str, Decimal]] | None) -> list[ModelCost]:
    return [ModelCost(model=model, cost_usd=cost) for model, cost in costs or []]


@strawberry.enum(description="What sessions are grouped by.")
class SessionGroupKey(Enum):
    WORKFLOW = strawberry.enum_value("workflow", description="Their workflow.")
    STATUS = strawberry.enum_value("status", description="Their status.")
    AGENT_PROVIDER = strawberry.enum_value("agent_provider", description="Their provider.")
    AGENT_MODEL = strawberry.enum_value("agent_model", description="Their model.")
    REPO = strawberry.enum_value(
        "repo", description="Each repository: a session with several counts in each."
    )
    PHASE = strawberry.enum_value("phase", description="Their phase.")


@strawberry.enum(description="What groups are sorted by.")
class GroupOrderField(Enum):
    COUNT = strawberry.enum_value("count", description="Sessions in the group.")
    TOTAL_COST_USD = strawberry.enum_value("total_cost_usd", description="Their summed cost.")
    TOTAL_TOKENS = strawberry.enum_value("total_tokens", description="Their summed tokens.")
    KEY = strawberry.enum_value("key", description="The group's key, byte-wise.")


@strawberry.input(description="How to sort groups; ties by key ascending, the null key last.")
class GroupOrder:
    field: GroupOrderField = strawberry.field(
        default=GroupOrderField.COUNT, description="The value to sort by."
    )
    direction: OrderDirection = strawberry.field(
        default=OrderDirection.DESC, description="Sort direction."
    )


@strawberry.type(description="The sessions sharing a key.")
class SessionGroup:
    key: str | None = strawberry.field(
        description="The key; null groups the sessions without one. STATUS keys are enum names."
    )
    label: str | None = strawberry.field(
        description="For display: the workflow's name, the phase, model or repository as "
        "the session fields display them; the key itself for STATUS and AGENT_PROVIDER."
    )
    count: int = strawberry.field(description="Sessions in the group.")
    totals: UsageTotals = strawberry.field(description="Their summed tokens and cost.")
    duration: DurationStats = strawberry.field(description="Their run times.")


@strawberry.enum(description="The length of a time bucket, at local boundaries.")
class TimeBucket(Enum):
    HOUR = strawberry.enum_value("hour", description="On the hour.")
    DAY = strawberry.enum_value("day", description="From local midnight.")
    WEEK = strawberry.enum_value("week", description="From Monday 00:00.")
    MONTH = strawberry.enum_value("month", description="From the 1st.")


@strawberry.enum(description="The time a session is placed in a bucket by.")
class SessionTimeField(Enum):
    STARTED_AT = strawberry.enum_value("started_at", description="When it started.")
    COMPLETED_AT = strawberry.enum_value("completed_at", description="When it finished.")


@strawberry.type(description="The sessions of one time bucket, [start, end).")
class SessionTimeBucket:
    start: datetime = strawberry.field(description="Where the bucket starts (UTC).")
    end: datetime = strawberry.field(description="Where the next one starts (UTC).")
    count: int = strawberry.field(description="Sessions in the bucket.")
    totals: UsageTotals = strawberry.field(description="Their summed tokens and cost.")
    by_status: list[StatusCount] = strawberry.field(description="Sessions per status.")
    cost_by_model: list[ModelCost] = strawberry.field(
        description="Their cost per model, most expensive first: stacked charts."
    )
    duration: DurationStats = strawberry.field(description="Their run times.")


_EMPTY = Aggregate(0, Totals(), Durations())
#: Metadata of a SessionStats field: each costs at least this much (SPEC §5).
AGGREGATE = {LEAST_COST: 100}


def _bucket_count(argument: Callable[[str], Any]) -> int:
    """A time series' cost: its number of buckets when ``from`` and ``to`` tell it before
    anything runs, else the most it may have."""
    low, high, offset = argument("from"), argument("to"), argument("utcOffsetMinutes")
    bucket = argument("bucket")
    if not isinstance(low, datetime) or not isinstance(high, datetime):
        return MAX_BUCKETS
    if not isinstance(bucket, TimeBucket):
        return MAX_BUCKETS
    if type(offset) is not int or low > high:
        return MAX_BUCKETS if type(offset) is not int else 1
    series = TimeSeries(bucket, offset)
    try:
        first, last = series.start(series.local(low)), series.start(series.local(high))
    except OverflowError:
        return MAX_BUCKETS
    return min(series.count(first, last), MAX_BUCKETS)


def _selected(info: Info) -> set[str]:
    """Python names of the fields selected on this field's value (one level down)."""
    field = field_plan(info)
    if field is None:
        return {"*"}
    return {
        name
        for selection in field.selections.values()
        for selected in selection.fields
        if (name := python_name(selected)) is not None
    }


def _wants(info: Info, name: str) -> bool:
    """Whether the field ``name`` (a Python name) is selected on this field's value."""
    wanted = _selected(info)
    return "*" in wanted or name in wanted


def _wants_percentiles(info: Info) -> bool:
    """Whether a percentile (or its display) is selected on a DurationStats below."""
    field = field_plan(info)
    return field is None or _percentiles_below(field)


def _percentiles_below(field: FieldPlan) -> bool:
    return any(
        (name := python_name(selected)) is not None and name[:1] == "p" and name[1:3].isdigit()
        for selected in selected_on(field, "DurationStats")
    )


def _wants_durations_alone(info: Info) -> bool:
    """Whether the ``duration`` of these stats is selected without percentiles: with
    them, the percentiles' read gives every measure of the durations."""
    field = field_plan(info)
    if field is None:
        return True
    return any(
        python_name(selected) == "duration" and not _percentiles_below(selected)
        for selected in selected_on(field, "SessionStats")
    )


@strawberry.type(description="What the sessions a filter matches add up to.")
class SessionStats:
    _scope: strawberry.Private[Scope]
    #: Whether ``duration`` is selected without percentiles: count and totals then come
    #: with the durations' measures (from the rollups, a second statement).
    _durations: strawberry.Private[bool] = True
    #: Whether sums may be read from the rollups (``Settings.stats_rollups``).
    _rollups: strawberry.Private[bool] = True
    #: Work shared by fields (count and totals read one statement), by name.
    _shared: strawberry.Private[dict[str, asyncio.Future[Any]]] = strawberry.field(
        default_factory=dict
    )

    @staticmethod
    def of(info: Info, scope: Scope) -> SessionStats:
        """The stats of ``scope`` for the ``sessionStats`` field of ``info``."""
        return SessionStats(
            _scope=scope,
            _durations=_wants_durations_alone(info),
            _rollups=info.context.settings.stats_rollups,
        )

    def _once(self, name: str, work: Callable[[], Awaitable[T]]) -> asyncio.Future[T]:
        found = self._shared.get(name)
        if found is None:
            found = self._shared[name] = asyncio.ensure_future(work())
        return found

    async def _overall(self, info: Info) -> Aggregate:
        engine = info.context.engine
        found = await self._once(
            "overall",
            lambda: stats.aggregates(
                engine, self._scope, durations=self._durations, use_rollups=self._rollups
            ),
        )
        return found.get(None, _EMPTY)

    @strawberry.field(description="Sessions matching the filter.", metadata=AGGREGATE)
    async def count(self, info: Info) -> int:
        return (await self._overall(info)).count

    @strawberry.field(description="Their summed tokens and cost.", metadata=AGGREGATE)
    async def totals(self, info: Info) -> UsageTotals:
        return UsageTotals.of((await self._overall(info)).totals)

    @strawberry.field(description="Their run times.", metadata=AGGREGATE)
    async def duration(self, info: Info) -> DurationStats:
        if not _wants_percentiles(info):
            return DurationStats.of((await self._overall(info)).durations)
        found = await stats.percentiles(info.context.engine, self._scope)
        return DurationStats.of(found.get(None, Durations()))

    @strawberry.field(
        description="Sessions per status: every status in order, zeros included.",
        metadata=AGGREGATE,
    )
    async def by_status(self, info: Info) -> list[StatusCount]:
        counts = await stats.status_counts(
            info.context.engine, self._scope, use_rollups=self._rollups
        )
        return _status_counts(counts.get(None))

    @strawberry.field(
        description="Their cost per model, most expensive first, then by model.",
        metadata=AGGREGATE,
    )
    async def cost_by_model(self, info: Info) -> list[ModelCost]:
        costs = await stats.model_costs(info.context.engine, self._scope, use_rollups=self._rollups)
        return _model_costs(costs.get(None))

    @strawberry.field(
        description="The sessions grouped by a key: the largest groups first.",
        metadata=AGGREGATE,
    )
    async def group_by(
        self,
        info: Info,
        by: Annotated[SessionGroupKey, strawberry.argument(description="What to group by.")],
        first: Annotated[int, strawberry.argument(description="How many groups, 1..200.")] = 20,
        order_by: Annotated[
            GroupOrder | None,
            strawberry.argument(description="Largest count first by default."),
        ] = UNSET,
    ) -> list[SessionGroup]:
        if not 1 <= first <= MAX_GROUPS:
            raise BadUserInput(
                f"`first` must be between 1 and {MAX_GROUPS}, got {first}", argumentName="first"
            )
        order = given(order_by) or GroupOrder()
        grouping = Grouping(cast("stats.GroupKind", by.name.lower()))
        engine = info.context.engine
        found = await stats.aggregates(
            engine,
            self._scope,
            grouping,
            order=(
                cast("stats.GroupOrderBy", order.field.name.lower()),
                order.direction is OrderDirection.DESC,
            ),
            first=first,
            durations=_wants(info, "duration") and not _wants_percentiles(info),
            use_rollups=self._rollups,
        )
        percentiles: dict[Any, Durations] = {}
        if found and _wants_percentiles(info):
            percentiles = await stats.percentiles(engine, self._scope, grouping, keys=list(found))
        return [
            SessionGroup(
                key=_group_key(by, key),
                label=_group_label(by, key, aggregate.name),
                count=aggregate.count,
                totals=UsageTotals.of(aggregate.totals),
                duration=DurationStats.of(percentiles.get(key, aggregate.durations)),
            )
            for key, aggregate in found.items()
        ]

    @strawberry.field(
        description="The sessions per time bucket, oldest first, empty buckets included.",
        metadata=AGGREGATE | {SIZE: _bucket_count},
    )
    async def time_series(
        self,
        info: Info,
        bucket: Annotated[TimeBucket, strawberry.argument(description="Bucket length.")],
        field: Annotated[
            SessionTimeField, strawberry.argument(description="The time placing a session.")
        ] = SessionTimeField.STARTED_AT,
        utc_offset_minutes: Annotated[
            int,
            strawberry.argument(
                description="Local boundaries for this fixed UTC offset: -840..840, a "
                "multiple of 15."
            ),
        ] = 0,
        from_: Annotated[
            datetime | None,
            strawberry.argument(
                name="from", description="The first bucket contains it; default: the earliest."
            ),
        ] = UNSET,
        to: Annotated[
            datetime | None,
            strawberry.argument(description="The last bucket contains it; default: the latest."),
        ] = UNSET,
    ) -> list[SessionTimeBucket]:
        series = TimeSeries.of(bucket, utc_offset_minutes)
        column = cast("stats.TimeColumn", field.name.lower())
        low, high = given(from_), given(to)
        engine = info.context.engine
        if low is None or high is None:
            earliest, latest = await stats.time_range(engine, self._scope, column)
            if earliest is None:
                return []
            low = earliest if low is None else low
            high = latest if high is None else high
        starts = series.starts(low, high)
        if not starts:
            return []
        grouping = Grouping(
            buckets=stats.Buckets(cast("stats.BucketUnit", bucket.name.lower()), column)
        )
        params = {
            "utc_offset_minutes": utc_offset_minutes,
            "bucket_from": series.utc(starts[0]),
            "bucket_to": series.utc(series.next(starts[-1])),
        }
        wanted = _selected(info)
        scope = self._scope

        async def none() -> dict[Any, Any]:
            return {}

        def when(names: set[str], work: Callable[[], Awaitable[dict[Any, Any]]]) -> Any:
            return work() if "*" in wanted or wanted & names else none()

        # With percentiles, their read gives every measure of the durations.
        ranked = _wants_percentiles(info)
        durations = {"duration"} if not ranked else set()
        aggregates, percentiles, statuses, models = await asyncio.gather(
            when(
                {"count", "totals"} | durations,
                lambda: stats.aggregates(
                    engine,
                    scope,
                    grouping,
                    params=params,
                    durations=bool(wanted & ({"*"} | durations)),
                    use_rollups=self._rollups,
                ),
            ),
            when(
                {"duration"} if ranked else set(),
                lambda: stats.percentiles(engine, scope, grouping, params=params),
            ),
            when(
                {"by_status"},
                lambda: stats.status_counts(
                    engine, scope, grouping, params=params, use_rollups=self._rollups
                ),
            ),
            when(
                {"cost_by_model"},
                lambda: stats.model_costs(
                    engine, scope, grouping, params=params, use_rollups=self._rollups
                ),
            ),
        )
        buckets = []
        for start in starts:
            key = start.isoformat(" ")
            aggregate = aggregates.get(key, _EMPTY)
            buckets.append(
                SessionTimeBucket(
                    start=series.utc(start),
                    end=series.utc(series.next(start)),
                    count=aggregate.count,
                    totals=UsageTotals.of(aggregate.totals),
                    by_status=_status_counts(statuses.get(key)),
                    cost_by_model=_model_costs(models.get(key)),
                    duration=DurationStats.of(percentiles.get(key, aggregate.durations)),
                )
            )
        return buckets

    @strawberry.field(
        description="Tool calls across the sessions, per tool: most calls first, then by name.",
        metadata=AGGREGATE,
    )
    async def tools(
        self,
        info: Info,
        first: Annotated[int, strawberry.argument(description="How many tools, 1..100.")] = 20,
    ) -> list[ToolUsage]:
        if not 1 <= first <= MAX_TOOLS:
            raise BadUserInput(
                f"`first` must be between 1 and {MAX_TOOLS}, got {first}", argumentName="first"
            )
        return [
            _tool_usage(tool)
            for tool in await stats.tool_totals(info.context.engine, self._scope, first)
        ]


def _tool_usage(tool: stats.ToolTotals) -> ToolUsage:
    return ToolUsage.of(
        tool.tool_name,
        tool.calls,
        tool.failures,
        tool.total_duration_seconds,
        tool.duration_count,
    )


def _group_key(by: SessionGroupKey, key: Any) -> str | None:
    if key is None:
        return None
    return str(key).upper() if by is SessionGroupKey.STATUS else str(key)


def _group_label(by: SessionGroupKey, key: Any, name: str | None) -> str | None:
    if key is None:
        return None
    if by is SessionGroupKey.WORKFLOW:
        return name if name is not None else str(key)
    if by is SessionGroupKey.PHASE:
        return display.format_phase(key)
    if by is SessionGroupKey.AGENT_MODEL:
        return display.format_model_compact(key)
    if by is SessionGroupKey.REPO:
        return display.format_repos([key])
    return _group_key(by, key)


class TimeSeries:
    """Buckets of one length at local boundaries of a fixed UTC offset: local times are
    naive datetimes, shifted by the offset to and from UTC."""

    def __init__(self, bucket: TimeBucket, offset_minutes: int) -> None:
        self.bucket = bucket
        self.offset = timedelta(minutes=offset_minutes)

    @staticmethod
    def of(bucket: TimeBucket, offset_minutes: int) -> TimeSeries:
        if not -MAX_UTC_OFFSET_MINUTES <= offset_minutes <= MAX_UTC_OFFSET_MINUTES or (
            offset_minutes % 15
        ):
            raise BadUserInput(
                "`utcOffsetMinutes` must be a multiple of 15 between -840 and 840, "
                f"got {offset_minutes}",
                argumentName="utcOffsetMinutes",
            )
        return TimeSeries(bucket, offset_minutes)

    def local(self, instant: datetime) -> datetime:
        if instant.tzinfo is None:
            instant = instant.replace(tzinfo=UTC)
        return instant.astimezone(UTC).replace(tzinfo=None) + self.offset

    def utc(self, local: datetime) -> datetime:
        return (local - self.offset).replace(tzinfo=UTC)

    def start(self, local: datetime) -> datetime:
        """The local start of the bucket holding ``local``."""
        hour = local.replace(minute=0, second=0, microsecond=0)
        if self.bucket is TimeBucket.HOUR:
            return hour
        day = hour.replace(hour=0)
        if self.bucket is TimeBucket.DAY:
            return day
        if self.bucket is TimeBucket.WEEK:
            return day - timedelta(days=day.weekday())
        return day.replace(day=1)

    def next(self, start: datetime) -> datetime:
        if self.bucket is TimeBucket.HOUR:
            return start + timedelta(hours=1)
        if self.bucket is TimeBucket.DAY:
            return start + timedelta(days=1)
        if self.bucket is TimeBucket.WEEK:
            return start + timedelta(days=7)
        year, month = divmod(start.year * 12 + start.month, 12)
        return start.replace(year=year, month=month + 1)

    def count(self, first: datetime, last: datetime) -> int:
        """Buckets from the one starting at ``first`` to the one starting at ``last``."""
        if self.bucket is TimeBucket.MONTH:
            return (last.year - first.year) * 12 + last.month - first.month + 1
        length = {TimeBucket.HOUR: 3600, TimeBucket.DAY: 86400, TimeBucket.WEEK: 7 * 86400}
        return int((last - first).total_seconds()) // length[self.bucket] + 1

    def starts(self, low: datetime, high: datetime) -> list[datetime]:
        """The local starts of the buckets from the one holding ``low`` to the one holding
        ``high`` (none if ``low`` is after ``high``); more than 1,000 is refused."""
        if low > high:
            return []
        try:
            first, last = self.start(self.local(low)), self.start(self.local(high))
        except OverflowError:
            raise BadUserInput(
                "`from` and `to` must be instants a bucket can start at", argumentName="from"
            ) from None
        requested = self.count(first, last)
        if requested > MAX_BUCKETS:
            raise BadUserInput(
                f"This time series has {requested} buckets; at most {MAX_BUCKETS} are "
                "allowed. Narrow `from`/`to` or use a longer bucket.",
                argumentName="bucket",
                requested=requested,
                maximum=MAX_BUCKETS,
            )
        starts = [first]
        while starts[-1] < last:
            starts.append(self.next(starts[-1]))
        return starts
