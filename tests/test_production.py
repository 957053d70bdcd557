"""Production mode: no GraphiQL, no introspection, no schema hints, unless enabled one by one."""

from __future__ import annotations

import httpx
import pytest
from graphql import get_introspection_query

from tests.conftest import Configured

INTROSPECTION = {"query": get_introspection_query()}
TYPO = {"query": "{ sessions { totalCont } }"}
HTML = {"Accept": "text/html"}


async def test_development_is_friendly(http: httpx.AsyncClient) -> None:
    page = await http.get("/graphql", headers=HTML)
    schema = await http.post("/graphql", json=INTROSPECTION)
    typo = await http.post("/graphql", json=TYPO)

    assert page.status_code == 200
    assert "errors" not in schema.json()
    [error] = typo.json()["errors"]
    assert "Did you mean 'totalCount'?" in error["message"]


async def test_production_hides_the_schema(configured: Configured) -> None:
    async with configured(env="production") as http:
        page = await http.get("/graphql", headers=HTML)
        schema = await http.post("/graphql", json=INTROSPECTION)
        typename = await http.post("/graphql", json={"query": "{ __typename }"})
        typo = await http.post("/graphql", json=TYPO)

    assert page.status_code == 404
    [error, *_] = schema.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "introspection" in error["message"]
    assert typename.json()["data"] == {"__typename": "Query"}  # not introspection of the schema
    [error] = typo.json()["errors"]
    assert error["message"] == "Cannot query field 'totalCont' on type 'SessionConnection'."
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}


@pytest.mark.parametrize("setting", ["introspection", "graphiql"])
async def test_production_can_enable_each_one(configured: Configured, setting: str) -> None:
    async with configured(env="production", **{setting: True}) as http:
        page = await http.get("/graphql", headers=HTML)
        schema = await http.post("/graphql", json=INTROSPECTION)

    assert (page.status_code == 200) is (setting == "graphiql")
    assert ("errors" not in schema.json()) is (setting == "introspection")
