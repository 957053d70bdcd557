"""Which single statement loads `operations(first: 50)` for 200 sessions fastest?

    .venv/bin/python bench/operation_pages.py [--sessions 200] [--per-session 100]

Builds a throwaway SQLite database and times, in one run, a window function over
all sessions' operations, a UNION ALL of per-session LIMIT subqueries, and a
JSON array of session ids joined to each one's LIMIT page (what sessiongraph
uses on SQLite). Each builds the statement and reads every row. Prints medians.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from sessiongraph.config import Settings
from sessiongraph.db import queries
from sessiongraph.db.engine import create_engine
from sessiongraph.db.migrate import upgrade
from sessiongraph.db.queries import OperationFilter
from sessiongraph.db.tables import operations, sessions
from sessiongraph.graphql.types.operation import LIGHT_COLUMNS

T0 = datetime(2026, 4, 18, tzinfo=UTC)


async def _fill(engine: AsyncEngine, n_sessions: int, per_session: int) -> list[str]:
    ids = [f"s{i:06d}" for i in range(n_sessions)]
    async with engine.begin() as conn:
        await conn.execute(
            sessions.insert(), [{"id": i, "status": "completed", "started_at": T0} for i in ids]
        )
        rows = [
            {
                "operation_id": f"{sid}-{k}",
                "session_id": sid,
                "operation_type": "tool_execution_started",
                "timestamp": T0 + timedelta(seconds=k),
                "success": True,
                "message_content": "x" * 200,
            }
            for sid in ids
            for k in range(per_session)
        ]
        await conn.execute(operations.insert(), rows)
    return ids


async def _window(engine: AsyncEngine, ids: list[str], limit: int) -> int:
    cols = [operations.c[name] for name in sorted(LIGHT_COLUMNS)]
    rank = (
        sa.func.row_number()
        .over(
            partition_by=operations.c.session_id,
            order_by=(operations.c.timestamp.is_(None), operations.c.timestamp, operations.c.id),
        )
        .label("rank")
    )
    inner = sa.select(*cols, rank).where(operations.c.session_id.in_(ids)).subquery()
    stmt = sa.select(inner).where(inner.c.rank <= limit)
    async with engine.connect() as conn:
        return len((await conn.execute(stmt)).all())


async def _run(engine: AsyncEngine, stmt: sa.Select[Any]) -> int:
    async with engine.connect() as conn:
        return len((await conn.execute(stmt)).all())


async def _union(engine: AsyncEngine, ids: list[str], limit: int) -> int:
    columns = [operations.c[name] for name in sorted(LIGHT_COLUMNS)]
    order = (operations.c.timestamp.is_(None), operations.c.timestamp, operations.c.id)
    branches = [
        sa.select(
            sa.select(*columns)
            .where(operations.c.session_id == session_id)
            .order_by(*order)
            .limit(limit)
            .subquery()
        )
        for session_id in ids
    ]
    union = sa.union_all(*branches).subquery()
    stmt = sa.select(union).order_by(
        union.c.session_id, union.c.timestamp.is_(None), union.c.timestamp, union.c.id
    )
    return await _run(engine, stmt)


async def _json_each(engine: AsyncEngine, ids: list[str], limit: int) -> int:
    pages = await queries.fetch_operation_pages(
        engine=engine,
        session_ids=ids,
        filters=OperationFilter(),
        after=None,
        limit=limit,
        columns=LIGHT_COLUMNS,
    )
    return sum(len(page) for page in pages.values())


async def main(n_sessions: int, per_session: int, limit: int, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(Settings(database_url=f"sqlite:///{Path(folder) / 'b.db'}"))
        await upgrade(engine)
        ids = await _fill(engine, n_sessions, per_session)
        shapes: dict[str, Any] = {
            "window function": _window,
            "UNION ALL of LIMIT": _union,
            "json_each + LIMIT": _json_each,
        }
        print(
            f"{n_sessions} sessions x {limit} of {per_session} operations, SQLite, {repeats} runs"
        )
        for name, run in shapes.items():
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                count = await run(engine, ids, limit)
                times.append(time.perf_counter() - started)
            assert count == n_sessions * min(limit, per_session)
            print(f"  {name:<20} median {statistics.median(times) * 1000:7.1f} ms")
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--per-session", type=int, default=100)
    parser.add_argument("--first", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    asyncio.run(main(args.sessions, args.per_session, args.first, args.repeats))
