"""GET /healthz: 200 while the database answers, 503 with a clear body when it does not."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.helpers import destroy_database_files


async def test_healthy_database_answers_200(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


async def test_unreadable_database_answers_503(http: httpx.AsyncClient, tmp_path: Path) -> None:
    # Given a database file that something outside the server has destroyed
    destroy_database_files(tmp_path)

    # When the health check runs
    response = await http.get("/healthz")

    # Then it reports the database as unreachable, without a traceback
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["database"] == "unreachable"
    assert "Traceback" not in response.text
