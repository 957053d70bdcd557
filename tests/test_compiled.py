"""The compiled execution path against plain graphql-core: random documents over the
whole schema must get byte-identical responses (the ``gql`` client compares every
query it sends with the same app run with ``compiled_execution`` off)."""

from __future__ import annotations

import gc
import os
from typing import Any

import httpx
import pytest
from graphql import (
    GraphQLArgument,
    GraphQLInterfaceType,
    GraphQLNonNull,
    GraphQLObjectType,
    Undefined,
    get_named_type,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from sessiongraph.app import create_app
from sessiongraph.config import Settings
from sessiongraph.graphql import documents as document_cache
from sessiongraph.graphql import execution, plan
from sessiongraph.graphql.context import Context
from sessiongraph.graphql.schema import build_schema
from sessiongraph.node_ids import operation_node_id
from tests.helpers import (
    T0,
    GraphQLClient,
    insert_operations,
    insert_session,
    operation_row,
)

pytestmark = pytest.mark.sqlite_only

EXAMPLES = int(os.environ.get("SESSIONGRAPH_FUZZ_EXAMPLES", "150"))
SCHEMA = build_schema(Settings())._schema
ARGUMENTS: dict[str, list[str]] = {
    "first": ["1", "2", "3", "0", "-1", "5000", "$n"],
    "types": ['["git_commit"]', "[]", '["tool_execution_started", "nope"]'],
    "toolName": ['"Bash"', "null"],
    "success": ["true", "false"],
    "after": ['"not-a-cursor"'],
    "statuses": ["[COMPLETED]", "[RUNNING, FAILED]"],
    "workflowId": ['"wf-1"', '"none"'],
    "orderBy": [
        "{field: TOTAL_TOKENS, direction: ASC}",
        "{field: COMPLETED_AT}",
        "{field: UPDATED_AT}",
        "{field: TOOL_CALL_COUNT, direction: ASC}",
    ],
    "startedAfter": ['"2026-04-18T07:00:00Z"'],
    "by": ["STATUS", "REPO", "WORKFLOW"],
    "bucket": ["DAY", "HOUR"],
    "utcOffsetMinutes": ["330", "-60"],
    "from": ['"2026-04-18T00:00:00Z"'],
    "filter": [
        "{status: [COMPLETED]}",
        "{not: {repo: {isNull: true}}}",
        '{or: [{workflowId: {eq: "wf-1"}}, {hasOperation: {types: ["git_commit"], success: false}}]'
        ', agentModel: {prefix: "claude"}}',
        '{and: [], errorMessage: {contains: ""}}',
        '{cacheHitRatio: {gte: 0.5}, metadata: [{key: "k"}], not: {hasOperation: {}}}',
    ],
}
DIRECTIVES = ["", "", "", " @include(if: $flag)", " @skip(if: $flag)", " @skip(if: false)"]


@st.composite
def selection_set(
    draw: st.DrawFn, type_: GraphQLObjectType | GraphQLInterfaceType, depth: int
) -> str:
    if isinstance(type_, GraphQLInterfaceType):
        return draw(abstract_selection_set(type_, depth))
    names = sorted(type_.fields)
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=5, unique=True))
    parts = []
    for name in chosen:
        field = type_.fields[name]
        named = get_named_type(field.type)
        if isinstance(named, GraphQLObjectType) and depth <= 0:
            continue
        alias = draw(st.sampled_from(["", "", f"{name}Again: "]))
        arguments = [
            f"{argument}: {draw(st.sampled_from(ARGUMENTS[argument]))}"
            for argument, definition in field.args.items()
            if argument in ARGUMENTS and (_required(definition) or draw(st.booleans()))
        ]
        text = alias + name + (f"({', '.join(arguments)})" if arguments else "")
        text += draw(st.sampled_from(DIRECTIVES))
        if isinstance(named, GraphQLObjectType):
            text += " { " + draw(selection_set(named, depth - 1)) + " }"
        if draw(st.integers(0, 5)) == 0:  # now and then inside an inline fragment
            text = f"... on {type_.name} {{ {text} }}"
        parts.append(text)
    if draw(st.booleans()):
        parts.append("__typename")
    if any(i.name == "Node" for i in type_.interfaces) and draw(st.integers(0, 3)) == 0:
        parts.append("... on Node { id }")
    return " ".join(parts) or "__typename"


@st.composite
def abstract_selection_set(draw: st.DrawFn, type_: GraphQLInterfaceType, depth: int) -> str:
    """The interface's own fields, and inline fragments on the types implementing it."""
    parts = draw(st.lists(st.sampled_from(["id", "__typename", "again: id"]), unique=True))
    for possible in SCHEMA.get_possible_types(type_):
        if draw(st.booleans()):
            inner = draw(selection_set(possible, depth - 1))
            parts.append(f"... on {possible.name} {{ {inner} }}")
    return " ".join(parts) or "__typename"


def _required(argument: GraphQLArgument) -> bool:
    return isinstance(argument.type, GraphQLNonNull) and argument.default_value is Undefined


#: The roots random documents start at, and the type of each.
ROOTS = {
    "sessions": "SessionConnection",
    'session(id: "s-1")': "Session",
    "sessionStats": "SessionStats",
    'node(id: "s-1")': "Node",
    f'node(id: "{operation_node_id("s-1-o4")}")': "Node",
    'nodes(ids: ["s-2", "{}", "none", "op:!!", "{}", "s-2", "s-3"])'.format(
        operation_node_id("s-1-o0"), operation_node_id("s-3-o1")
    ): "Node",
}


@st.composite
def documents(draw: st.DrawFn) -> str:
    root = draw(st.sampled_from(sorted(ROOTS)))
    type_ = SCHEMA.get_type(ROOTS[root])
    if root in ("sessions", "sessionStats"):
        arguments = [
            f"{argument}: {draw(st.sampled_from(ARGUMENTS[argument]))}"
            for argument in SCHEMA.query_type.fields[root].args  # type: ignore[union-attr]
            if argument in ARGUMENTS and draw(st.booleans())
        ]
        root += f"({', '.join(arguments)})" if arguments else ""
    assert isinstance(type_, GraphQLObjectType | GraphQLInterfaceType)
    body = draw(selection_set(type_, depth=4))
    used = [d for d in ("$flag: Boolean!", "$n: Int") if d.split(":")[0] in root + body]
    head = f"query ({', '.join(used)})" if used else "query"
    if draw(st.booleans()):  # through a named fragment
        return f"{head} {{ {root} {{ ...Part }} }} fragment Part on {type_.name} {{ {body} }}"
    return f"{head} {{ {root} {{ {body} }} }}"


@pytest.fixture
async def varied(engine: AsyncEngine) -> None:
    """Sessions with the values that make completion interesting: nulls, git facts with
    unknown keys, a token count past GraphQL's Int (an error at its path), cache hit
    ratios with and without a denominator, tool usage with and without durations."""
    await insert_session(
        engine,
        id="s-1",
        workflow_id="wf-1",
        started_at=T0,
        repos=["a/b"],
        input_tokens=1000,
        cache_read_tokens=500,
        cache_creation_tokens=250,
    )
    await insert_session(engine, id="s-2", status="running", completed_at=None)
    await insert_session(engine, id="s-3", cache_read_tokens=2**40, total_tokens=2**40)
    kinds = ["git_commit", "tool_execution_started", "message_response", "tool_blocked"]
    kinds += ["tool_execution_completed", "subagent_started", "tool_execution_failed"]
    rows = [
        operation_row(
            session_id=session,
            operation_id=f"{session}-o{n}",
            operation_type=kind,
            tool_name=("Bash" if n % 2 else "Edit") if n % 5 else None,
            timestamp=None if n % 5 == 0 else T0,
            duration_seconds=n / 3 if n % 4 else None,
            success=n % 3 != 0,
            git={"sha": "abc", "files_changed": n, "surprise": [1]} if n % 4 == 0 else None,
        )
        for session in ("s-1", "s-2", "s-3")
        for n, kind in enumerate(kinds * (3 if session == "s-1" else 1))
    ]
    await insert_operations(engine, *rows)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(document=documents(), flag=st.booleans(), n=st.sampled_from([None, 1, 3, 0]))
async def test_random_documents_answer_the_same_both_ways(
    gql: GraphQLClient, varied: None, document: str, flag: bool, n: int | None
) -> None:
    variables: dict[str, Any] = {"flag": flag, "n": n}

    body = await gql.raw(document, variables)  # compares with plain execution itself

    assert "data" in body or "errors" in body


async def test_a_count_beyond_an_int_saturates_the_same_both_ways(
    gql: GraphQLClient, varied: None
) -> None:
    data = await gql(
        "{ sessions(orderBy: {field: TOTAL_TOKENS}) { nodes { id cacheReadTokens "
        "cacheReadTokensDisplay cacheHitRatio } } }"
    )

    assert data["sessions"]["nodes"][0] == {
        "id": "s-3",
        "cacheReadTokens": 2**31 - 1,
        "cacheReadTokensDisplay": "2147.5M",
        "cacheHitRatio": 1.0,
    }


async def test_the_setting_turns_the_compiled_path_off(configured: Any, varied: None) -> None:
    async with configured(compiled_execution=False) as http:
        response = await http.post("/graphql", json={"query": "{ sessions { nodes { id } } }"})

    assert len(response.json()["data"]["sessions"]["nodes"]) == 3


async def test_nothing_of_a_request_outlives_it(
    gql: GraphQLClient, engine: AsyncEngine, varied: None
) -> None:
    # session(id:) has no page to read ahead for: its loader-backed fields take the
    # compiled path's give-up route, whose exceptions must not keep requests alive.
    for _ in range(5):
        await gql.raw('{ session(id: "s-1") { operationCount workflowName } }')
        await gql.raw(
            "{ sessions { nodes { operationCount operations { nodes { id: operationId } } } } }"
        )
    gc.collect()

    alive = [o for o in gc.get_objects() if isinstance(o, Context) and o.engine is engine]
    assert alive == []


SWITCHED = """query ($flag: Boolean!, $other: Boolean!) { sessions { nodes {
  id ...Costs status @include(if: $flag)
  operations(first: 3) { nodes { operationId toolName @skip(if: $other) } }
} } }
fragment Costs on Session {
  totalCostUsd @skip(if: $flag) tokens: inputTokens @include(if: $other)
}"""


async def test_plans_kept_for_one_set_of_switches_serve_no_other(
    gql: GraphQLClient, varied: None
) -> None:
    # The same document with every combination of its @skip/@include variables, twice
    # over: the plans kept for one combination must never answer another.
    seen: dict[tuple[bool, bool], Any] = {}
    for _ in range(2):
        for flag in (True, False):
            for other in (True, False):
                body = await gql.raw(SWITCHED, {"flag": flag, "other": other})
                assert seen.setdefault((flag, other), body) == body
    first = seen[(True, True)]["data"]["sessions"]["nodes"][0]
    assert set(first) == {"id", "status", "tokens", "operations"}
    assert set(seen[(False, False)]["data"]["sessions"]["nodes"][0]) == {
        "id",
        "totalCostUsd",
        "operations",
    }


async def test_a_repeated_query_is_planned_once(
    gql: GraphQLClient, varied: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []
    reader = execution._reader

    def counting(field: Any) -> Any:
        built.append(field.name)
        return reader(field)

    monkeypatch.setattr(execution, "_reader", counting)
    query = "{ sessions { nodes { id status operations { nodes { operationId } } } } }"

    await gql.raw(query)
    walks, readers = plan.walks, len(built)
    await gql.raw(query)
    await gql.raw(query, {"unused": 1})

    assert readers > 0
    assert len(built) == readers  # the later requests found every reader kept
    assert plan.walks == walks  # ... and the plan they belong to


async def test_kept_plans_go_with_their_document(
    app: Any, http: Any, varied: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    query = "{ sessions { nodes { id durationDisplay } } }"
    await http.post("/graphql", json={"query": query})
    schema = app.state.schema._schema
    assert len(plan._kept[schema]) > 0

    # The parse cache drops every document but the next one (another query's).
    monkeypatch.setattr(document_cache._parsed, "capacity", 1)
    await http.post("/graphql", json={"query": "{ __typename }"})
    gc.collect()

    [kept] = plan._kept[schema].values()  # the newest query's plans alone
    [variant] = kept.variants.values()
    assert variant.root is not None
    assert [field.key for field in variant.root.fields] == ["__typename"]


MUTATIONS: list[tuple[str, dict[str, Any]]] = [
    (
        """mutation { startSession(input: {id: "m-1", workflowId: "wf", workflowName: "Build",
             agentModel: "claude-sonnet-4-6", repos: ["a/b", "c/d"], phaseId: "research_phase",
             startedAt: "2026-04-18T08:00:00Z", metadata: {k: [1, 2]}}) {
           __typename id ... on Node { nodeId: id } status workflowName workflow { id name }
           phaseDisplay agentModelDisplay reposDisplay metadata operationCount
           durationDisplay } }""",
        {},
    ),
    (
        """mutation ($ops: [OperationInput!]!, $heavy: Boolean!) {
           recordOperations(sessionId: "m-1", operations: $ops) {
             recordedOperationIds alreadyPresentOperationIds
             operations { ...Light toolInput @include(if: $heavy) git { sha filesChanged } }
           } }
         fragment Light on Operation { id operationId operationType timestamp success gitSha }""",
        {
            "heavy": True,
            "ops": [
                {
                    "operationId": "m-o-1",
                    "operationType": "git_commit",
                    "timestamp": "2026-04-18T08:00:01Z",
                    "toolInput": "plain text",
                    "git": {"sha": "abc", "files_changed": 2, "unknown": True},
                },
                {"operationId": "m-o-2", "operationType": "x", "success": False},
            ],
        },
    ),
    (
        """mutation { completeSession(id: "m-1", status: FAILED, errorMessage: "boom",
             inputTokens: 1200, outputTokens: 34, totalCostUsd: "0.0438",
             costByModel: [{model: "m", costUsd: "0.0438"}],
             completedAt: "2026-04-18T08:02:14Z") {
           id status errorMessage totalTokens totalTokensDisplay totalCostUsd totalCostDisplay
           costByModel { model costUsd } durationSeconds durationDisplay operationCount
           operations(first: 1) { totalCount nodes { operationId } } } }""",
        {},
    ),
    ('mutation { completeSession(id: "m-1", status: COMPLETED) { id } }', {}),  # an error
]


async def test_mutation_results_are_the_same_bytes_both_ways(tmp_path: Any) -> None:
    # Mutations write, so each way gets its own database, and the same writes.
    answers = []
    for compiled in (True, False):
        url = f"sqlite+aiosqlite:///{tmp_path / f'{compiled}.db'}"
        app = create_app(Settings(database_url=url, compiled_execution=compiled))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                answers.append(
                    [
                        (await http.post("/graphql", json={"query": q, "variables": v})).content
                        for q, v in MUTATIONS
                    ]
                )

    compiled_answers, plain_answers = answers
    assert compiled_answers == plain_answers
    assert b'"errors"' in plain_answers[-1]
    assert b'"errors"' not in b"".join(plain_answers[:-1])


@pytest.mark.parametrize(
    "document",
    [
        "query ($a: Boolean = true) { sessions { pageInfo { hasNextPage @include(if: $a) } } }",
        """query ($a: Boolean = true) { session(id: "s-1") {
             id operations { nodes { operationId git { sha @skip(if: $a) } } } } }""",
    ],
)
async def test_a_null_switch_is_the_same_error_both_ways(
    gql: GraphQLClient, varied: None, document: str
) -> None:
    # `if: null` is refused while collecting the fields of an object, so only where
    # there is an object: under a null `git`, there is nothing to refuse.
    for _ in range(2):  # planned, then from the kept plans
        await gql.raw(document, {"a": None})  # compares with plain execution itself
