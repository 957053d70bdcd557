"""GET /healthz: 200 while the database answers, 503 with a clear body when it does not."""

from __future__ import annotations

from pathlib import Path

import httpx

from sessiongraph.config import Settings


async def test_healthy_database_answers_200(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


async def test_unreadable_database_answers_503(
    http: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    # Given a database file that something outside the server has destroyed
    for path in tmp_path.glob("test.db*"):
        path.write_bytes(b"this is not a database" * 512)

    # When the health check runs
    response = await http.get("/healthz")

    # Then it reports the database as unreachable, without a traceback
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["database"] == "unreachable"
    assert "Traceback" not in response.text
