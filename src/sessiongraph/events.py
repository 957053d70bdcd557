"""Change events: what a write tells subscribers, and the brokers that carry it.

A write announces its ``Event`` inside its own transaction. The ``PostgresBroker``
sends it there with ``NOTIFY``, which PostgreSQL delivers on commit, in commit
order, and never for a rollback; every server process ``LISTEN``s on the channel,
this one included, and hands what arrives to its own subscribers. The local
``Broker`` (SQLite: one process) hands the event to this process's subscribers
once the write has committed. An event names rows and never carries them:
subscribers read what their query selects, so a payload stays a few hundred
bytes, far below NOTIFY's 8000-byte limit, however big the batch.

Each subscriber has a bounded ``Mailbox``. Delivery never waits for a
subscriber; a mailbox that fills up ends its subscription with
``EVENTS_MISSED`` instead of growing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sessiongraph.errors import EventsMissed

logger = logging.getLogger("sessiongraph.events")

CHANNEL = "sessiongraph_events"
#: How often an idle PostgreSQL listener checks its connection is still alive.
LISTENER_CHECK_SECONDS = 30.0
RECONNECT_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)


class EventKind(StrEnum):
    STARTED = "started"
    RECORDED = "recorded"
    COMPLETED = "completed"


_RANK = {EventKind.STARTED: 0, EventKind.RECORDED: 1, EventKind.COMPLETED: 2}


#: A column's value an event carries: JSON (times in ISO 8601, amounts as decimal strings).
Scalar = str | int | float | bool | None
#: The longest text an event carries as a replaced value (NOTIFY holds 8000 bytes).
MAX_REPLACED_TEXT = 1000


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    session_id: str
    #: The first and last ``operations.id`` the batch added (RECORDED; an event standing
    #: for several, see ``followed_by``, may have them whatever its kind).
    rows: tuple[int, int] | None = None
    #: The session's columns the write changed, with the values they had before it
    #: (``replaced``): with the rows, what the session was before the write, for the
    #: subscribers that must know whether it matched their filter then.
    before: tuple[tuple[str, Scalar], ...] = ()
    #: An event standing for several: one of them started the session.
    includes_start: bool = False

    @property
    def new(self) -> bool:
        """Whether the session did not exist before the write(s) this event stands for."""
        return self.kind is EventKind.STARTED or self.includes_start

    def followed_by(self, later: Event) -> Event:
        """One event standing for this one and a ``later`` one of the same session: the
        higher kind (a late RECORDED must not hide that the session completed), the rows
        of both, and each changed column as it was before the first change of it."""
        kind = self.kind if _RANK[self.kind] > _RANK[later.kind] else later.kind
        spans = [span for span in (self.rows, later.rows) if span is not None]
        rows = (min(s[0] for s in spans), max(s[1] for s in spans)) if spans else None
        before = dict(later.before) | dict(self.before)
        return Event(kind, self.session_id, rows, tuple(before.items()), self.new or later.new)

    def encode(self) -> str:
        fields: dict[str, Any] = {
            "kind": self.kind.value,
            "session": self.session_id,
            "rows": self.rows,
        }
        if self.before:
            fields["before"] = dict(self.before)
        return json.dumps(fields, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> Event:
        """The event ``text`` encodes; ``ValueError`` for anything else."""
        try:
            fields = json.loads(text)
            kind = EventKind(fields["kind"])
            session_id = fields["session"]
            rows = fields["rows"]
        except (TypeError, KeyError, ValueError) as error:
            raise ValueError(f"not an event: {text[:200]!r}") from error
        if not isinstance(session_id, str):
            raise ValueError(f"not an event: {text[:200]!r}")
        if rows is not None:
            if not (
                isinstance(rows, list) and len(rows) == 2 and all(type(row) is int for row in rows)
            ):
                raise ValueError(f"not an event: {text[:200]!r}")
            rows = (rows[0], rows[1])
        if (rows is None) != (kind is not EventKind.RECORDED):
            raise ValueError(f"not an event: {text[:200]!r}")
        before = fields.get("before", {})
        if not isinstance(before, dict) or not all(
            isinstance(value, str | int | float | bool | None) for value in before.values()
        ):
            raise ValueError(f"not an event: {text[:200]!r}")
        return cls(kind=kind, session_id=session_id, rows=rows, before=tuple(before.items()))


def replaced(row: Mapping[Any, Any], values: Mapping[str, Any]) -> tuple[tuple[str, Scalar], ...]:
    """What a write of ``values`` to the session ``row`` replaces: each column it changes
    (a value the database computes, such as its clock, always does) with its value in
    ``row``, as an event carries it. JSON documents and long texts are left out (an event
    stays small); a subscriber then reads them as they are now."""
    found: list[tuple[str, Scalar]] = []
    for name, value in values.items():
        old = row[name]
        computed = isinstance(value, sa.ClauseElement)
        if (not computed and old == value) or isinstance(old, dict | list):
            continue
        if isinstance(old, datetime):
            old = old.isoformat()
        elif isinstance(old, Decimal):
            old = str(old)
        elif isinstance(old, str) and len(old) > MAX_REPLACED_TEXT:
            continue
        found.append((name, old))
    return tuple(found)


class Mailbox:
    """One subscriber's undelivered events: at most ``capacity`` of them.

    Events with the same ``key`` coalesce (the newer replaces the older, which
    is right where the subscriber reads the current state anyway); ``key=None``
    keeps every event. An event that finds the mailbox full marks it
    overflowed, and the subscriber's next ``take`` raises ``EventsMissed``.
    """

    def __init__(
        self,
        *,
        accepts: Callable[[Event], bool],
        key: Callable[[Event], Hashable] | None,
        capacity: int,
    ) -> None:
        self._accepts = accepts
        self._key = key
        self._capacity = capacity
        self._pending: dict[Hashable, Event] = {}
        self._serial = itertools.count()
        self._ready = asyncio.Event()
        self._failure: EventsMissed | None = None

    def offer(self, event: Event) -> None:
        if self._failure is not None or not self._accepts(event):
            return
        key = self._key(event) if self._key is not None else next(self._serial)
        if key not in self._pending and len(self._pending) >= self._capacity:
            self.fail(
                EventsMissed(
                    f"This subscriber fell more than {self._capacity} events behind, so "
                    "events were dropped. Read the current state and subscribe again.",
                    reason="subscriberTooSlow",
                    limit=self._capacity,
                )
            )
            return
        earlier = self._pending.pop(key, None)  # a coalesced event moves to the back
        if earlier is not None:
            event = earlier.followed_by(event)
        self._pending[key] = event
        self._ready.set()

    def fail(self, error: EventsMissed) -> None:
        """End the subscription with ``error`` once the subscriber next looks."""
        if self._failure is None:
            self._failure = error
            self._pending.clear()
            self._ready.set()

    async def take(self) -> list[Event]:
        """Every pending event, oldest first, once there is at least one."""
        await self._ready.wait()
        if self._failure is not None:
            raise self._failure
        events = list(self._pending.values())
        self._pending.clear()
        self._ready.clear()
        return events


class Broker:
    """Delivers events to this process's subscribers (SQLite: the only process)."""

    def __init__(self, *, capacity: int) -> None:
        self.capacity = capacity
        self._mailboxes: set[Mailbox] = set()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def announce(self, conn: AsyncConnection, event: Event) -> None:
        """Called inside the write's transaction, just before it commits."""

    def committed(self, event: Event) -> None:
        """Called once the write's transaction has committed."""
        self.deliver(event)

    def deliver(self, event: Event) -> None:
        for mailbox in list(self._mailboxes):
            mailbox.offer(event)

    def fail_all(self, error: EventsMissed) -> None:
        for mailbox in list(self._mailboxes):
            mailbox.fail(error)

    @property
    def subscriber_count(self) -> int:
        return len(self._mailboxes)

    @contextlib.contextmanager
    def subscribe(
        self, *, accepts: Callable[[Event], bool], key: Callable[[Event], Hashable] | None
    ) -> Iterator[Mailbox]:
        mailbox = Mailbox(accepts=accepts, key=key, capacity=self.capacity)
        self._mailboxes.add(mailbox)
        try:
            yield mailbox
        finally:
            self._mailboxes.discard(mailbox)


class PostgresBroker(Broker):
    """Sends events with NOTIFY; a dedicated connection LISTENs for every process's events.

    When the listening connection is lost, events may have been missed: every
    subscription then ends with ``EVENTS_MISSED`` (its client re-reads and
    subscribes again) while the broker reconnects.
    """

    def __init__(self, engine: AsyncEngine, *, capacity: int) -> None:
        super().__init__(capacity=capacity)
        self._dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._connection: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._connect()
        self._supervisor = asyncio.create_task(self._supervise(), name="events-listener")

    async def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close(timeout=2)

    async def announce(self, conn: AsyncConnection, event: Event) -> None:
        await conn.execute(sa.select(sa.func.pg_notify(CHANNEL, event.encode())))

    def committed(self, event: Event) -> None:
        pass  # NOTIFY delivers it, to this process too

    @property
    def connected(self) -> bool:
        return self._connection is not None and not self._lost.is_set()

    @contextlib.contextmanager
    def subscribe(
        self, *, accepts: Callable[[Event], bool], key: Callable[[Event], Hashable] | None
    ) -> Iterator[Mailbox]:
        with super().subscribe(accepts=accepts, key=key) as mailbox:
            if not self.connected:  # it would hear nothing until the listener is back
                mailbox.fail(
                    EventsMissed(
                        "The server's event feed is reconnecting. Try again shortly.",
                        reason="listenerReconnecting",
                    )
                )
            yield mailbox

    @property
    def listener_pid(self) -> int | None:
        """The server process id of the listening connection (for tests and diagnostics)."""
        return self._connection.get_server_pid() if self._connection is not None else None

    async def _connect(self) -> None:
        connection: asyncpg.Connection = await asyncpg.connect(self._dsn, timeout=10)
        try:
            connection.add_termination_listener(self._on_termination)
            await connection.add_listener(CHANNEL, self._on_notification)
        except BaseException:
            connection.terminate()
            raise
        self._connection = connection
        self._lost.clear()

    def _on_notification(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            event = Event.decode(payload)
        except ValueError as error:  # someone else's NOTIFY on our channel
            logger.warning("ignored a notification: %s", error)
            return
        self.deliver(event)

    def _on_termination(self, connection: Any) -> None:
        if connection is self._connection:  # not one this broker closed itself
            self._lost.set()

    async def _supervise(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LISTENER_CHECK_SECONDS):
                    await self._lost.wait()
            if not self._lost.is_set() and await self._alive():
                continue
            logger.warning("lost the event listener connection; reconnecting")
            self.fail_all(
                EventsMissed(
                    "The server lost its event feed for a moment, so events may have been "
                    "missed. Read the current state and subscribe again.",
                    reason="listenerReconnected",
                )
            )
            await self._reconnect()

    async def _alive(self) -> bool:
        connection = self._connection
        if connection is None or connection.is_closed():
            return False
        try:
            await connection.execute("SELECT 1", timeout=5)
        except Exception:  # any failure means the listener must be rebuilt
            return False
        return True

    async def _reconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.terminate()
        for attempt in itertools.count():
            try:
                await self._connect()
            except Exception as error:  # the database is down: keep trying
                delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
                logger.warning("event listener reconnect failed (%s); retrying", error)
                await asyncio.sleep(delay)
            else:
                logger.info("event listener reconnected")
                return


def create_broker(engine: AsyncEngine, *, capacity: int) -> Broker:
    if engine.dialect.name == "postgresql":
        return PostgresBroker(engine, capacity=capacity)
    return Broker(capacity=capacity)
