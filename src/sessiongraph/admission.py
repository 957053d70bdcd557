"""How much a process runs at once: a bounded number of HTTP requests run, a bounded
queue of others waits its turn in order of arrival, and any request beyond the queue,
or one that waited too long in it, is refused at once with ``UNAVAILABLE`` (HTTP 503
and ``Retry-After``), before any GraphQL work.

The GraphQL work of a request is mostly CPU in this one process, so running more
requests at once does not finish them sooner: it shares the process's time among more
of them, each takes longer (and holds its memory and database connections longer)
until they all run into the request and pool timeouts together. Waiting in the queue
costs nothing but the wait.

A refusal is not free either (most of it is HTTP parsing and the socket's writes), and
a client that retries at once instead of after ``Retry-After`` would have the process
spend its time refusing (measured: 2,600 refusals a second from 192 such clients left
7 requests a second admitted, of 80). So the next request on a connection that was
refused within ``Retry-After`` waits out the rest of it, at no cost, before it is
considered: a client that waits as asked never notices, one that does not is refused
at most once per connection per ``Retry-After``.

WebSockets pass: a socket lives for as long as its client wants, and the reads a
subscription makes for each event must not wait behind queries (a subscriber that
falls behind loses events); what one socket may run is bounded by
``ws_max_subscriptions``.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from sessiongraph.errors import ErrorCode, Unavailable
from sessiongraph.guard import error_response

BUSY = "The server is busy; retry the request later."
RETRY_AFTER_SECONDS = Unavailable.RETRY_AFTER_SECONDS


class Admission:
    """An ASGI wrapper that runs at most ``limit`` HTTP requests at once, with a queue of
    ``queue_size`` requests that wait at most ``queue_timeout`` seconds each."""

    def __init__(self, app: ASGIApp, *, limit: int, queue_size: int, queue_timeout: float) -> None:
        self.app = app
        self.limit = limit
        self.queue_size = queue_size
        self.queue_timeout = queue_timeout
        self.running = 0
        #: One future per waiting request, oldest first; a request leaving the queue
        #: (granted, timed out or gone) takes its future out.
        self._waiting: deque[asyncio.Future[None]] = deque()
        #: Until when each recently refused connection (by its client address) is not
        #: to be heard again, soonest first.
        self._refused: OrderedDict[tuple[Any, ...], float] = OrderedDict()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = tuple(scope["client"]) if scope.get("client") else None
        if client is not None and client in self._refused:
            pause = self._refused.pop(client) - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
        if not await self._enter():
            self._refuse(client)
            refusal = error_response(
                503,
                BUSY,
                ErrorCode.UNAVAILABLE,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                retryAfterSeconds=RETRY_AFTER_SECONDS,
            )
            await refusal(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self._leave()

    async def _enter(self) -> bool:
        """Whether the request may run: at once, or after its wait in the queue."""
        if self.running < self.limit and not self._waiting:
            self.running += 1
            return True
        if len(self._waiting) >= self.queue_size:
            return False
        turn = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            async with asyncio.timeout(self.queue_timeout):
                await turn
        except BaseException as error:
            if turn.done() and not turn.cancelled():
                # Handed a place just as it timed out or was cancelled: pass it on.
                self._leave()
            elif turn in self._waiting:  # else a leaving request dropped it already
                self._waiting.remove(turn)
            if isinstance(error, TimeoutError):
                return False
            raise
        return True  # the request that left counted this one as running

    def _leave(self) -> None:
        """A running request is done: its place goes to the oldest waiting one."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.running -= 1

    def _refuse(self, client: tuple[Any, ...] | None) -> None:
        now = time.monotonic()
        while self._refused and next(iter(self._refused.values())) <= now:
            self._refused.popitem(last=False)  # a connection that did not come back
        if client is not None:
            self._refused[client] = now + RETRY_AFTER_SECONDS
