"""Session rollups: per hour, day (UTC) and undated, status and workflow, kept by triggers;
and an index of started_at for the sessions with a duration (covering it on PostgreSQL).

``session_rollups`` sums the sessions of each (grain, bucket, status, workflow):
their number, tokens and cost; ``session_model_rollups`` the plain-decimal entries of
their ``cost_by_model`` per model. Triggers on ``sessions`` add a row's values on
INSERT, subtract them on DELETE, and both on an UPDATE that changes one of them, in
the writing transaction, whoever writes; a TRUNCATE of sessions empties both. The
existing sessions are summed once here.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from sessiongraph.db.columns import Identifier, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Spelled out, not imported: a migration must not change when the code does.
TOKENS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_tokens",
    "cache_read_tokens",
    "total_tokens",
)
#: The session columns the rollups sum or are keyed by.
SUMMED = ("status", "workflow_id", "started_at", *TOKENS, "total_cost_usd", "cost_by_model")
KEY = ("grain", "bucket", "status", "workflow_id")
#: Cost units per dollar on SQLite (NUMERIC(20, 10) has 10 places).
UNITS = "10000000000"
UNDATED_SQLITE = "0001-01-01 00:00:00.000000"
#: The dated grains this revision keeps: letter and unit (migration 0004 adds months).
GRAINS = (("h", "hour"), ("d", "day"))
#: A unit's start on SQLite: the leading characters of a stored time, and what follows.
SQLITE_TRUNCATION = {
    "hour": (13, ":00:00.000000"),
    "day": (10, " 00:00:00.000000"),
    "month": (7, "-01 00:00:00.000000"),
}
#: What a cost_by_model entry must look like to be summed: a plain non-negative decimal.
PLAIN_PG = r"'^[0-9]+(\.[0-9]+)?$'"
PLAIN_SQLITE = "e.type IN ('text', 'integer', 'real') AND CAST(e.value AS TEXT) != ''" + "".join(
    f" AND NOT CAST(e.value AS TEXT) GLOB '{pattern}'"
    for pattern in ("*[^0-9.]*", "*.*.*", ".*", "*.")
)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    cost = sa.BigInteger() if sqlite else sa.Numeric()
    model = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")

    def key() -> list[sa.Column[object]]:
        return [
            sa.Column("grain", sa.String(1), nullable=False),
            sa.Column("bucket", UTCDateTime(), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("workflow_id", Identifier, nullable=False),
        ]

    op.create_table(
        "session_rollups",
        *key(),
        sa.Column("sessions", sa.BigInteger(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in TOKENS),
        sa.Column("total_cost_usd", cost, nullable=False),
        sa.PrimaryKeyConstraint(*KEY),
    )
    op.create_table(
        "session_model_rollups",
        *key(),
        sa.Column("model", model, nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.Column("cost", cost, nullable=False),
        sa.PrimaryKeyConstraint(*KEY, "model"),
    )
    if sqlite:
        _sqlite_triggers()
    else:
        _postgresql_triggers()
    # A window's durations (exact percentiles): on PostgreSQL from the index alone.
    op.create_index(
        "ix_sessions_started_at_durations",
        "sessions",
        ["started_at"],
        postgresql_include=["duration_seconds", "workflow_id", "status"],
        postgresql_where=sa.text("duration_seconds IS NOT NULL"),
        sqlite_where=sa.text("duration_seconds IS NOT NULL"),
    )
    _backfill(sqlite)


def downgrade() -> None:
    op.drop_index("ix_sessions_started_at_durations", "sessions")
    if op.get_bind().dialect.name == "sqlite":
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER sessions_rollups_{name}")
    else:
        op.execute("DROP TRIGGER sessions_rollups_truncate ON sessions")
        op.execute("DROP TRIGGER sessions_rollups_update ON sessions")
        op.execute("DROP TRIGGER sessions_rollups_insert_delete ON sessions")
        op.execute("DROP FUNCTION sessiongraph_rollups_clear()")
        op.execute("DROP FUNCTION sessiongraph_rollups_row()")
        op.execute("DROP FUNCTION sessiongraph_rollup(integer, sessions)")
    op.drop_table("session_model_rollups")
    op.drop_table("session_rollups")


def _added(table: str, names: tuple[str, ...]) -> str:
    """The SET clause adding the proposed row's sums to ``table``'s."""
    return ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in names)


_SUMS = ("sessions", *TOKENS, "total_cost_usd")
_MODEL_SUMS = ("entries", "cost")
_COLUMNS = ", ".join((*KEY, "sessions", *TOKENS, "total_cost_usd"))
_MODEL_COLUMNS = ", ".join((*KEY, "model", "entries", "cost"))


def _changed(old: str, new: str) -> str:
    return " OR ".join(f"{old}.{c} IS DISTINCT FROM {new}.{c}" for c in SUMMED)


# -- PostgreSQL: one SQL function adds a row times a sign; a trigger calls it ------------------


def postgresql_start(unit: str, time: str) -> str:
    return f"timezone('UTC', date_trunc('{unit}', timezone('UTC', {time})))"


def sqlite_start(unit: str, time: str) -> str:
    length, rest = SQLITE_TRUNCATION[unit]
    return f"substr({time}, 1, {length}) || '{rest}'"


def postgresql_rollup_function(grains: tuple[tuple[str, str], ...], *, replace: bool) -> str:
    """``sessiongraph_rollup(times, s)``: adds session ``s``, ``times`` over, to its rows."""
    dated = "".join(
        f"SELECT '{grain}' AS grain, {postgresql_start(unit, '(s).started_at')} AS bucket "
        "WHERE (s).started_at IS NOT NULL UNION ALL "
        for grain, unit in grains
    )
    grains_sql = f"""(
        {dated}SELECT 'u', timestamptz '0001-01-01 00:00:00+00' WHERE (s).started_at IS NULL
    ) AS g"""
    sums = ", ".join(f"times * (s).{name}" for name in TOKENS)
    return f"""
        CREATE {"OR REPLACE " if replace else ""}FUNCTION sessiongraph_rollup(
            times integer, s sessions
        ) RETURNS void
        LANGUAGE sql AS $$
            INSERT INTO session_rollups AS r ({_COLUMNS})
            SELECT g.grain, g.bucket, (s).status, coalesce((s).workflow_id, ''), times,
                   {sums}, times * (s).total_cost_usd
            FROM {grains_sql}
            ORDER BY 1, 2
            ON CONFLICT ({", ".join(KEY)}) DO UPDATE SET {_added("r", _SUMS)};
            INSERT INTO session_model_rollups AS r ({_MODEL_COLUMNS})
            SELECT g.grain, g.bucket, (s).status, coalesce((s).workflow_id, ''), e.key, times,
                   times * round(e.value::numeric, 10)
            FROM {grains_sql}, jsonb_each_text(
                CASE WHEN jsonb_typeof((s).cost_by_model) = 'object'
                THEN (s).cost_by_model ELSE '{{}}'::jsonb END
            ) AS e
            WHERE e.value ~ {PLAIN_PG}
            ORDER BY 1, 2, 5
            ON CONFLICT ({", ".join(KEY)}, model) DO UPDATE SET {_added("r", _MODEL_SUMS)};
        $$
        """


def _postgresql_triggers() -> None:
    op.execute(postgresql_rollup_function(GRAINS, replace=False))
    op.execute(
        """
        CREATE FUNCTION sessiongraph_rollups_row() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' THEN PERFORM sessiongraph_rollup(-1, OLD); END IF;
            IF TG_OP <> 'DELETE' THEN PERFORM sessiongraph_rollup(1, NEW); END IF;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION sessiongraph_rollups_clear() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            TRUNCATE session_rollups, session_model_rollups;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER sessions_rollups_insert_delete AFTER INSERT OR DELETE ON sessions
        FOR EACH ROW EXECUTE FUNCTION sessiongraph_rollups_row()
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER sessions_rollups_update AFTER UPDATE OF {", ".join(SUMMED)} ON sessions
        FOR EACH ROW WHEN ({_changed("OLD", "NEW")})
        EXECUTE FUNCTION sessiongraph_rollups_row()
        """
    )
    op.execute(
        """
        CREATE TRIGGER sessions_rollups_truncate AFTER TRUNCATE ON sessions
        FOR EACH STATEMENT EXECUTE FUNCTION sessiongraph_rollups_clear()
        """
    )


# -- SQLite: the same statements inline, for NEW and OLD ------------------------------------------


def _sqlite_grains(row: str, grains: tuple[tuple[str, str], ...]) -> str:
    started = f"{row}.started_at"
    dated = "".join(
        f"SELECT '{grain}' AS grain, {sqlite_start(unit, started)} AS bucket "
        f"WHERE {started} IS NOT NULL UNION ALL "
        for grain, unit in grains
    )
    return f"""(
        {dated}SELECT 'u', '{UNDATED_SQLITE}' WHERE {started} IS NULL
    ) AS g"""


def _sqlite_add(row: str, sign: int, grains: tuple[tuple[str, str], ...]) -> str:
    sums = ", ".join(f"{sign} * {row}.{name}" for name in TOKENS)
    cost = f"{sign} * CAST(round({row}.total_cost_usd * {UNITS}) AS INTEGER)"
    entry_cost = f"{sign} * CAST(round(CAST(e.value AS REAL) * {UNITS}) AS INTEGER)"
    models = f"{row}.cost_by_model"
    document = f"CASE WHEN json_type({models}) = 'object' THEN {models} ELSE '{{}}' END"
    # A trigger body has no table aliases: the tables by name.
    return f"""
        INSERT INTO session_rollups ({_COLUMNS})
        SELECT g.grain, g.bucket, {row}.status, coalesce({row}.workflow_id, ''), {sign},
               {sums}, {cost}
        FROM {_sqlite_grains(row, grains)}
        WHERE true
        ON CONFLICT ({", ".join(KEY)}) DO UPDATE SET {_added("session_rollups", _SUMS)};
        INSERT INTO session_model_rollups ({_MODEL_COLUMNS})
        SELECT g.grain, g.bucket, {row}.status, coalesce({row}.workflow_id, ''), e.key, {sign},
               {entry_cost}
        FROM {_sqlite_grains(row, grains)}, json_each({document}) AS e
        WHERE {PLAIN_SQLITE}
        ON CONFLICT ({", ".join(KEY)}, model)
            DO UPDATE SET {_added("session_model_rollups", _MODEL_SUMS)};
    """


def sqlite_triggers(grains: tuple[tuple[str, str], ...]) -> list[str]:
    """The statements creating the three triggers on ``sessions`` that keep the rollups."""
    changed = _changed("OLD", "NEW").replace("IS DISTINCT FROM", "IS NOT")
    return [
        f"CREATE TRIGGER sessions_rollups_insert AFTER INSERT ON sessions "
        f"BEGIN {_sqlite_add('NEW', 1, grains)} END",
        f"CREATE TRIGGER sessions_rollups_delete AFTER DELETE ON sessions "
        f"BEGIN {_sqlite_add('OLD', -1, grains)} END",
        f"CREATE TRIGGER sessions_rollups_update AFTER UPDATE OF {', '.join(SUMMED)} "
        f"ON sessions WHEN {changed} "
        f"BEGIN {_sqlite_add('OLD', -1, grains)} {_sqlite_add('NEW', 1, grains)} END",
    ]


def _sqlite_triggers() -> None:
    for statement in sqlite_triggers(GRAINS):
        op.execute(statement)


# -- the sessions already stored ----------------------------------------------------------------


def _backfill(sqlite: bool) -> None:
    for statement in backfill_statements(sqlite):
        op.execute(statement)


def backfill_statements(sqlite: bool) -> list[str]:
    """The statements summing every stored session into the (empty) rollups: also run
    by bench/scale.py after loading sessions with the triggers off."""
    if sqlite:
        cost = f"CAST(round(total_cost_usd * {UNITS}) AS INTEGER)"
        entry_cost = f"CAST(round(CAST(e.value AS REAL) * {UNITS}) AS INTEGER)"
        grains = f"""
            SELECT 'h' AS grain, substr(started_at, 1, 13) || ':00:00.000000' AS bucket, *
                FROM sessions WHERE started_at IS NOT NULL
            UNION ALL SELECT 'd', substr(started_at, 1, 10) || ' 00:00:00.000000', *
                FROM sessions WHERE started_at IS NOT NULL
            UNION ALL SELECT 'u', '{UNDATED_SQLITE}', * FROM sessions WHERE started_at IS NULL
        """
        entries = (
            "json_each(CASE WHEN json_type(s.cost_by_model) = 'object' "
            "THEN s.cost_by_model ELSE '{}' END) AS e"
        )
        plain = PLAIN_SQLITE
    else:
        cost = "total_cost_usd"
        entry_cost = "round(e.value::numeric, 10)"

        def trunc(unit: str) -> str:
            return f"timezone('UTC', date_trunc('{unit}', timezone('UTC', started_at)))"

        grains = f"""
            SELECT 'h' AS grain, {trunc("hour")} AS bucket, *
                FROM sessions WHERE started_at IS NOT NULL
            UNION ALL SELECT 'd', {trunc("day")}, * FROM sessions WHERE started_at IS NOT NULL
            UNION ALL SELECT 'u', timestamptz '0001-01-01 00:00:00+00', *
                FROM sessions WHERE started_at IS NULL
        """
        entries = (
            "jsonb_each_text(CASE WHEN jsonb_typeof(s.cost_by_model) = 'object' "
            "THEN s.cost_by_model ELSE '{}'::jsonb END) AS e"
        )
        plain = f"e.value ~ {PLAIN_PG}"
    sums = ", ".join(f"sum({name})" for name in TOKENS)
    return [
        f"""
        INSERT INTO session_rollups ({_COLUMNS})
        SELECT grain, bucket, status, coalesce(workflow_id, ''), count(*), {sums}, sum({cost})
        FROM ({grains}) AS s
        GROUP BY grain, bucket, status, coalesce(workflow_id, '')
        """,
        f"""
        INSERT INTO session_model_rollups ({_MODEL_COLUMNS})
        SELECT s.grain, s.bucket, s.status, coalesce(s.workflow_id, ''), e.key, count(*),
               sum({entry_cost})
        FROM ({grains}) AS s, {entries}
        WHERE {plain}
        GROUP BY s.grain, s.bucket, s.status, coalesce(s.workflow_id, ''), e.key
        """,
    ]
