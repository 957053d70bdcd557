"""Writers that retry lose nothing and store nothing twice while the database restarts and
while the server is killed: a real PostgreSQL of the test's own, a real server process
(``sessiongraph serve``), eight concurrent writers running sessions through
startSession, recordOperations and completeSession, and a reader.

What a client sees of a fault must be UNAVAILABLE (then it retries after
``retryAfterSeconds``) or a transport error (then it retries), never INTERNAL; and since
every write is idempotent, retrying after an ambiguous failure is always right.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from sessiongraph.config import Settings
from sessiongraph.db.engine import create_engine
from tests.conftest import migrate_schema
from tests.live import free_port
from tests.postgres import PostgresServer

WRITERS = 8
BATCHES_PER_SESSION = 3
OPERATIONS_PER_BATCH = 5
#: Between faults: long enough for every writer to get through a few sessions.
CALM_SECONDS = 4.0
#: A client's wait before retrying a transport error (UNAVAILABLE says how long).
TRANSPORT_RETRY_SECONDS = 0.2

START = """mutation ($input: StartSessionInput!) { startSession(input: $input) { id status } }"""
RECORD = """mutation ($id: String!, $ops: [OperationInput!]!) {
  recordOperations(sessionId: $id, operations: $ops) {
    recordedOperationIds alreadyPresentOperationIds } }"""
COMPLETE = """mutation ($id: String!, $at: DateTime!) {
  completeSession(id: $id, status: COMPLETED, completedAt: $at, totalCostUsd: "0.0125") {
    id status } }"""
READ = "{ sessions(first: 5) { totalCount nodes { id status operationCount } } }"


class Server:
    """``sessiongraph serve`` in a process of its own, on one port across restarts."""

    def __init__(self, directory: Path, database_url: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.directory = directory
        self.database_url = database_url
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        clean = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONGRAPH_")}
        log = self.directory / f"serve-{self.starts}.log"
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sessiongraph", "serve", "--port", str(self.port)],
                cwd=self.directory,
                env=clean | {"SESSIONGRAPH_DATABASE_URL": self.database_url},
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            assert self.process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "not healthy in 60 s:\n" + log.read_text()
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown, requests in flight cut off wherever they are."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)

    def logs(self) -> str:
        return "".join(p.read_text() for p in sorted(self.directory.glob("serve-*.log")))


@dataclass
class Tally:
    #: What each attempt ended as: "ok", "UNAVAILABLE", "transport", or anything else.
    outcomes: Counter[str] = field(default_factory=Counter)
    #: Unexpected answers, in full, for the failure message.
    unexpected: list[str] = field(default_factory=list)
    #: Every batch sent, by session: the operation ids of each.
    batches: dict[str, list[list[str]]] = field(default_factory=dict)
    #: Operation ids the server acknowledged as stored (recorded or already present).
    acknowledged: set[str] = field(default_factory=set)
    #: Sessions whose completion was acknowledged.
    completed: set[str] = field(default_factory=set)
    stop: bool = False


async def _call(
    client: httpx.AsyncClient, tally: Tally, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    """The data of ``query``, retried until the server answers it without an outage."""
    while True:
        try:
            response = await client.post("/graphql", json={"query": query, "variables": variables})
        except httpx.TransportError:
            tally.outcomes["transport"] += 1
            await asyncio.sleep(TRANSPORT_RETRY_SECONDS)
            continue
        body = (
            response.json()
            if response.headers.get("content-type", "").startswith("application/json")
            else None
        )
        errors = body.get("errors") if isinstance(body, dict) else None
        if response.status_code == 200 and body is not None and not errors:
            tally.outcomes["ok"] += 1
            data: dict[str, Any] = body["data"]
            return data
        codes = {e.get("extensions", {}).get("code") for e in errors or []}
        if response.status_code in (200, 503) and codes == {"UNAVAILABLE"}:
            tally.outcomes["UNAVAILABLE"] += 1
            retry_after = max(e["extensions"]["retryAfterSeconds"] for e in errors or [])
            await asyncio.sleep(min(retry_after, 0.5))  # the test's clock is short
            continue
        tally.outcomes[",".join(sorted(str(c) for c in codes)) or str(response.status_code)] += 1
        tally.unexpected.append(f"{response.status_code} {response.text[:500]}")
        raise AssertionError(f"unexpected answer: {response.status_code} {response.text[:500]}")


async def _writer(base: str, number: int, tally: Tally) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        for k in range(10_000):
            if tally.stop:
                return
            session_id = f"w{number}-s{k}"
            start = {"id": session_id, "startedAt": "2026-04-18T08:00:00Z", "agentModel": "m"}
            await _call(client, tally, START, {"input": start})
            tally.batches[session_id] = []
            for b in range(BATCHES_PER_SESSION):
                ids = [f"{session_id}-b{b}-o{i}" for i in range(OPERATIONS_PER_BATCH)]
                tally.batches[session_id].append(ids)
                ops = [{"operationId": i, "operationType": "message"} for i in ids]
                data = await _call(client, tally, RECORD, {"id": session_id, "ops": ops})
                result = data["recordOperations"]
                assert sorted(
                    result["recordedOperationIds"] + result["alreadyPresentOperationIds"]
                ) == sorted(ids)
                tally.acknowledged.update(ids)
            await _call(client, tally, COMPLETE, {"id": session_id, "at": "2026-04-18T09:00:00Z"})
            tally.completed.add(session_id)


async def _reader(base: str, tally: Tally) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        while not tally.stop:
            await _call(client, tally, READ, {})
            await asyncio.sleep(0.05)


async def _stored(url: str) -> tuple[dict[str, tuple[str, int]], dict[str, str]]:
    """Each stored operation id's session and how many rows hold it; each session's
    status and whether its counter matches its rows."""
    engine = create_engine(Settings(database_url=url))
    try:
        async with engine.connect() as conn:
            operations = (
                await conn.execute(
                    sa.text(
                        "SELECT operation_id, min(session_id), count(*) FROM operations "
                        "GROUP BY operation_id"
                    )
                )
            ).all()
            sessions = (
                await conn.execute(
                    sa.text(
                        "SELECT s.id, s.status, s.operation_count = "
                        "(SELECT count(*) FROM operations o WHERE o.session_id = s.id) "
                        "FROM sessions s"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    return (
        {op: (session, count) for op, session, count in operations},
        {sid: status if counted else f"{status}, miscounted" for sid, status, counted in sessions},
    )


async def test_retrying_writers_lose_nothing_through_database_restarts_and_server_kills(
    own_postgres: PostgresServer, tmp_path: Path
) -> None:
    restart = own_postgres.restart
    assert restart is not None
    await migrate_schema(own_postgres.url)
    server = Server(tmp_path, own_postgres.url)
    await asyncio.to_thread(server.start)
    tally = Tally()
    began = time.monotonic()
    try:
        clients = [asyncio.create_task(_writer(server.base, n, tally)) for n in range(WRITERS)]
        clients.append(asyncio.create_task(_reader(server.base, tally)))
        progress = []

        async def calm() -> None:
            await asyncio.sleep(CALM_SECONDS)
            progress.append(len(tally.acknowledged))
            assert not any(c.done() for c in clients), [c.exception() for c in clients if c.done()]

        await calm()
        # The database restarts twice under the writers, the server living on
        for _ in range(2):
            await asyncio.to_thread(restart)
            await calm()
        # The server is killed (SIGKILL) mid-write and started again, twice
        for _ in range(2):
            server.kill()
            await asyncio.sleep(0.5)  # requests meet a closed port meanwhile
            await asyncio.to_thread(server.start)
            await calm()
        tally.stop = True
        async with asyncio.timeout(60):
            await asyncio.gather(*clients)
    finally:
        tally.stop = True
        server.stop()
    elapsed = time.monotonic() - began

    stored, statuses = await _stored(own_postgres.url)
    sent = [ids for batches in tally.batches.values() for ids in batches]
    print(  # the counts, for the record (pytest -s)
        f"\nfault test: {elapsed:.0f} s, {len(tally.batches)} sessions, {len(sent)} batches, "
        f"{len(tally.acknowledged)} operations acknowledged, {len(stored)} stored; "
        f"attempts {dict(tally.outcomes)}; acknowledged after each phase {progress}"
    )

    # The clients met faults, and saw them only as UNAVAILABLE or transport errors
    assert tally.unexpected == [], tally.unexpected
    assert set(tally.outcomes) <= {"ok", "UNAVAILABLE", "transport"}, tally.outcomes
    assert tally.outcomes["UNAVAILABLE"] + tally.outcomes["transport"] > 0
    # Writes went on after every fault
    assert all(b > a for a, b in zip([0, *progress], progress, strict=False)), progress
    # Every acknowledged operation is stored, once, for its session
    assert tally.acknowledged <= stored.keys()
    assert {count for _, count in stored.values()} == {1}
    assert all(stored[op][0] == op.rsplit("-b", 1)[0] for op in stored)
    # No batch is partial: all of its operations are stored, or none
    partial = [ids for ids in sent if 0 < sum(i in stored for i in ids) < len(ids)]
    assert partial == []
    # Nothing stored that no client sent
    assert stored.keys() <= {i for ids in sent for i in ids}
    # No session is stuck: every one was completed, its counter exact
    assert set(statuses) == set(tally.batches)
    assert tally.completed == set(tally.batches)
    assert set(statuses.values()) == {"completed"}, Counter(statuses.values())
    # The server logged outages as such, never a traceback of one
    assert "Traceback" not in server.logs(), server.logs()[-5000:]


#: What a start after kill -9 may take on SQLite: 1.5-5 s here (nearly all of it
#: Python's imports, see the README), 10 s beside the whole suite on a shared machine;
#: a start that hangs (recovery, a migration, a seed) is what this catches.
SQLITE_RESTART_BOUND_SECONDS = 30.0


async def test_a_sqlite_server_killed_mid_write_is_healthy_again_soon_with_every_write(
    tmp_path: Path,
) -> None:
    # Given `sessiongraph serve` on a SQLite file, as the README starts it, and eight
    # retrying writers
    url = f"sqlite+aiosqlite:///{tmp_path / 'sessiongraph.db'}"
    server = Server(tmp_path, url)
    await asyncio.to_thread(server.start)
    tally = Tally()
    try:
        clients = [asyncio.create_task(_writer(server.base, n, tally)) for n in range(WRITERS)]
        await asyncio.sleep(1.5)
        written = len(tally.acknowledged)
        # When it is killed (SIGKILL) mid-write and started again
        server.kill()
        began = time.monotonic()
        await asyncio.to_thread(server.start)
        took = time.monotonic() - began
        await asyncio.sleep(1.0)
        tally.stop = True
        async with asyncio.timeout(30):
            await asyncio.gather(*clients)
    finally:
        tally.stop = True
        server.stop()
    stored, statuses = await _stored(url)
    sent = [ids for batches in tally.batches.values() for ids in batches]
    print(f"\nSQLite restart after kill -9: healthy after {took:.2f} s")

    # Then it was healthy within the bound, and writes went on after it
    assert took < SQLITE_RESTART_BOUND_SECONDS
    assert 0 < written < len(tally.acknowledged)
    # Every acknowledged operation is stored, once, for its session; no batch partial
    assert tally.acknowledged <= stored.keys()
    assert {count for _, count in stored.values()} == {1}
    assert [ids for ids in sent if 0 < sum(i in stored for i in ids) < len(ids)] == []
    # Every session the writers finished is completed, its counter exact
    assert tally.completed <= statuses.keys()
    assert {statuses[s] for s in tally.completed} == {"completed"}
    assert "miscounted" not in " ".join(statuses.values())
    assert set(tally.outcomes) <= {"ok", "UNAVAILABLE", "transport"}, tally.unexpected
