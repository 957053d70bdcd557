"""The guard decodes a request's JSON once; the view reuses what it read."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import Configured

QUERY = "query ($first: Int) { sessions(first: $first) { totalCount } }"


class Decodings:
    """Counts every decoding of one JSON text, by orjson and by the standard library."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, text: str | bytes) -> None:
        self.text = text
        self.count = 0
        monkeypatch.setattr(orjson, "loads", self._counting(orjson.loads))
        monkeypatch.setattr(json, "loads", self._counting(json.loads))

    def _counting(self, loads: Callable[..., Any]) -> Callable[..., Any]:
        def counted(data: Any, *args: Any, **kwargs: Any) -> Any:
            if data == self.text:
                self.count += 1
            return loads(data, *args, **kwargs)

        return counted


async def test_a_json_body_is_decoded_once(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = json.dumps({"query": QUERY, "variables": {"first": 5}}).encode()
    decodings = Decodings(monkeypatch, body)

    response = await http.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )

    assert response.json()["data"] == {"sessions": {"totalCount": 0}}
    assert decodings.count == 1


async def test_a_batch_is_decoded_once(
    configured: Configured, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = json.dumps([{"query": QUERY}, {"query": QUERY, "variables": {"first": 1}}]).encode()
    async with configured(batching=True) as http:
        decodings = Decodings(monkeypatch, body)

        response = await http.post(
            "/graphql", content=body, headers={"content-type": "application/json"}
        )

    assert [item["data"] for item in response.json()] == [{"sessions": {"totalCount": 0}}] * 2
    assert decodings.count == 1


async def test_the_variables_of_a_get_are_decoded_once(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    variables = '{"first": 5}'
    decodings = Decodings(monkeypatch, variables)

    response = await http.get("/graphql", params={"query": QUERY, "variables": variables})

    assert response.json()["data"] == {"sessions": {"totalCount": 0}}
    assert decodings.count == 1


async def test_integers_past_64_bits_keep_every_digit(http: httpx.AsyncClient) -> None:
    # orjson reads these as floats; the standard library, as the API always has, exactly.
    body = (
        b'{"query": "mutation ($m: JSON) { startSession(input: {metadata: $m}) { metadata } }",'
        b' "variables": {"m": {"big": 18446744073709551616, "low": -9223372036854775809}}}'
    )

    response = await http.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )

    assert response.content.count(b'"metadata":{"big":18446744073709551616,') == 1
    assert b'"low":-9223372036854775809}' in response.content
