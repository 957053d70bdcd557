"""The compiled path checks at start-up that the library internals it relies on are
there, and steps aside for plain execution, with one warning, when one is not."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import strawberry.types.fields.resolver
from graphql.execution.values import VariableValues
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from sessiongraph.config import Settings
from sessiongraph.graphql import compat
from sessiongraph.graphql.execution import CompiledExecutionContext
from sessiongraph.graphql.schema import build_schema
from tests.conftest import Configured
from tests.helpers import GraphQLClient, insert_session


def test_the_installed_versions_have_every_internal_the_compiled_path_uses() -> None:
    assert compat.missing_internals() == []
    assert compat.execution_context_class() is CompiledExecutionContext
    assert build_schema(Settings()).execution_context_class is CompiledExecutionContext


def _old_execute_fields(
    self: Any, parent_type: Any, source_value: Any, path: Any, fields: Any
) -> Any:
    raise AssertionError("never called")


@pytest.mark.parametrize(
    ("owner", "attribute", "replacement", "named"),
    [
        (strawberry.types.fields.resolver, "SELF_PARAMSPEC", None, compat.SELF_PARAMSPEC),
        (
            StrawberryGraphQLCoreExecutionContext,
            "execute_fields",
            _old_execute_fields,
            f"{compat.CONTEXT}.execute_fields(parent_type, source_value, path, "
            "grouped_field_set, position_context)",
        ),
        (
            VariableValues,
            "_fields",
            ("sources", "values"),
            "graphql.execution.values:VariableValues(coerced)",
        ),
    ],
)
def test_a_missing_or_changed_internal_is_named(
    monkeypatch: pytest.MonkeyPatch, owner: Any, attribute: str, replacement: Any, named: str
) -> None:
    # Given a library release that lost, or changed, one internal
    if replacement is None:
        monkeypatch.delattr(owner, attribute)
    else:
        monkeypatch.setattr(owner, attribute, replacement)

    # Then the check names it
    assert named in compat.missing_internals()


@pytest.mark.sqlite_only
async def test_without_an_internal_plain_execution_answers(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    configured: Configured,
    engine: AsyncEngine,
) -> None:
    # Given a graphql-core release whose variable values lost a field the compiled path
    # reads (plain execution does not read it through the tuple's fields)
    monkeypatch.setattr(VariableValues, "_fields", ("sources", "values"))

    def compiled(*_args: Any) -> Any:
        raise AssertionError("the compiled path ran")

    monkeypatch.setattr(CompiledExecutionContext, "execute_fields", compiled)
    await insert_session(engine, id="s-1", status="running")

    # When an app is built
    with caplog.at_level(logging.WARNING, logger="sessiongraph.graphql"):
        async with configured() as http:
            # Then it answers on strawberry's plain execution, the compiled path never involved
            data = await GraphQLClient(http)("{ sessions { totalCount nodes { id status } } }")

    assert data == {"sessions": {"totalCount": 1, "nodes": [{"id": "s-1", "status": "RUNNING"}]}}
    # after one warning that names what is missing
    [warning] = [record for record in caplog.records if record.name == "sessiongraph.graphql"]
    assert warning.levelno == logging.WARNING
    assert "graphql.execution.values:VariableValues(coerced)" in warning.getMessage()
    assert compat.execution_context_class() is StrawberryGraphQLCoreExecutionContext
