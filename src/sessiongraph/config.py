"""Settings, read from the environment (prefix ``SESSIONGRAPH_``) and validated at startup."""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from sessiongraph.inputs import MAX_JSON_DEPTH
from sessiongraph.jsontext import READABLE_DEPTH

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./sessiongraph.db"


class Settings(BaseSettings):
    """Everything that can be configured, with its default."""

    model_config = SettingsConfigDict(env_prefix="SESSIONGRAPH_", extra="ignore", frozen=True)

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path.db or "
        "postgresql+asyncpg://user:password@host/db.",
    )
    echo_sql: bool = Field(default=False, description="Log every SQL statement.")
    cursor_secret: str = Field(
        default_factory=lambda: secrets.token_urlsafe(32),
        min_length=16,
        description="Key that signs pagination cursors. Unset, each process draws a random "
        "one, so cursors do not survive a restart: set the same value on every instance.",
    )
    env: Literal["development", "production"] = Field(
        default="development",
        description="production: no GraphiQL, no introspection, no field suggestions "
        "unless enabled one by one.",
    )
    graphiql: bool | None = Field(
        default=None,
        description="Serve GraphiQL to browsers at /graphql (default: not in production).",
    )
    introspection: bool | None = Field(
        default=None, description="Answer introspection queries (default: not in production)."
    )
    pool_size: int = Field(
        default=16,
        ge=1,
        description="Database connections each process keeps open (on PostgreSQL, all "
        "opened at start). A request holds one while a statement runs, more at once only "
        "for root fields side by side: 2 x max_concurrent_requests leaves room.",
    )
    max_overflow: int = Field(
        default=0,
        ge=0,
        description="Connections opened beyond pool_size under load, and closed when "
        "returned (each costs a new connection then).",
    )
    pool_timeout_seconds: float = Field(
        default=10.0, gt=0, description="How long a request waits for a free connection."
    )
    max_concurrent_requests: int = Field(
        default=8,
        ge=1,
        description="HTTP requests one process runs at once; the others wait in the queue.",
    )
    request_queue_size: int = Field(
        default=120,
        ge=0,
        description="HTTP requests that may wait for their turn per process; beyond them a "
        "request is refused at once (503, UNAVAILABLE).",
    )
    request_queue_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Longest a request waits in the queue before it is refused (503, UNAVAILABLE).",
    )
    sqlite_busy_timeout_seconds: float = Field(
        default=5.0,
        ge=0,
        description="SQLite: how long a write waits for another process's (an import, a "
        "seed) before it is refused (UNAVAILABLE); this process's writes take turns "
        "without it.",
    )
    statement_timeout_ms: int = Field(
        default=5000,
        ge=0,
        description="PostgreSQL: longest a statement may run before the server cancels it "
        "(0 = no limit).",
    )

    ws_connection_init_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="WebSocket: how long a new connection may take to send connection_init "
        "before it is closed (4408).",
    )
    ws_max_subscriptions: int = Field(
        default=50, ge=1, description="WebSocket: operations one connection may run at once."
    )
    ws_keepalive_seconds: float = Field(
        default=15.0,
        ge=0,
        description="WebSocket: interval of the server's protocol pings (0 = none).",
    )
    subscriber_queue_size: int = Field(
        default=100,
        ge=1,
        description="Events one subscription may fall behind before it ends with EVENTS_MISSED.",
    )

    max_depth: int = Field(default=10, ge=1, description="Deepest field nesting a query may have.")
    max_aliases: int = Field(default=15, ge=0, description="Aliases one document may use.")
    max_directives: int = Field(default=50, ge=0, description="Directives one document may use.")
    max_tokens: int = Field(default=1000, ge=1, description="Tokens one document may have.")
    cost_budget: int = Field(
        default=50_000,
        ge=1,
        description="Nodes one query may ask for, counted from its `first` arguments.",
    )
    max_query_length: int = Field(
        default=50_000, ge=100, description="Longest query text accepted, in characters."
    )
    max_body_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=1024,
        description="Largest request body, or WebSocket message, accepted.",
    )
    max_json_depth: int = Field(
        default=MAX_JSON_DEPTH,
        ge=1,
        le=READABLE_DEPTH,
        description="Deepest nesting of a JSON value stored (metadata, toolInput, git) "
        "by a mutation or an import; {} and [] are one level.",
    )
    max_request_json_depth: int = Field(
        default=128,
        ge=16,
        le=512,
        description="Deepest nesting of a request body, a GET's variables or extensions, "
        "or a WebSocket message as a whole; checked before any other parsing.",
    )
    batching: bool = Field(default=False, description="Accept a JSON array of operations.")
    max_batch_operations: int = Field(
        default=10, ge=1, description="Operations one batched request may carry."
    )
    request_timeout_seconds: float = Field(
        default=15.0, gt=0, description="Longest a query or mutation may run."
    )
    token_sha256: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="SHA-256 hex digests of bearer tokens that may read and write; "
        "comma-separated. None configured (and no read-only ones): no authentication.",
    )
    read_only_token_sha256: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="SHA-256 hex digests of bearer tokens that may only read; comma-separated.",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins whose pages may call the API (CORS); comma-separated.",
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names (the Host header, without its port) the server answers "
        "for, comma-separated; `*.example.com` for its subdomains, `*` for any. Bound to a "
        "loopback address, the loopback names are allowed besides; bound to another, none "
        "configured allows any host (and a warning says so at start).",
    )
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Longest a client may take to send a request's headers (from when it "
        "connects, or starts the request); then 408 and the connection is closed.",
    )
    body_timeout_seconds: float = Field(
        default=20.0,
        gt=0,
        description="Longest a client may take to send a request's body, once its headers "
        "are in; then 408 and the connection is closed.",
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        description="Open connections (HTTP and WebSocket) one process serves; a request on "
        "one more is refused (503, UNAVAILABLE) and its connection closed.",
    )
    persisted_queries: bool = Field(
        default=True, description="Accept Apollo automatic persisted queries."
    )
    persisted_query_store_size: int = Field(
        default=1000, ge=1, description="Persisted queries kept in memory (least recent go)."
    )
    persisted_queries_file: Path | None = Field(
        default=None,
        description="JSON object of sha256 hash -> query: registered queries, loaded at start.",
    )
    persisted_queries_only: bool = Field(
        default=False,
        description="Run only the queries of persisted_queries_file (an allow-list).",
    )

    compiled_execution: bool = Field(
        default=True,
        description="Complete fields that only read their object without graphql-core's "
        "generic steps (same results, faster); off runs plain graphql-core.",
    )

    stats_rollups: bool = Field(
        default=True,
        description="Answer sessionStats sums over long windows from the hourly, daily and "
        "monthly rollups the database keeps (same results, flat cost); off sums the sessions.",
    )

    @model_validator(mode="after")
    def _room_for_stored_json(self) -> Settings:
        # A stored value travels in a body: {"variables": {"ops": [{"toolInput": ...}]}}
        # wraps it in 4 levels, a batch in one more.
        if self.max_request_json_depth < self.max_json_depth + 8:
            raise ValueError(
                f"max_request_json_depth ({self.max_request_json_depth}) must be at least "
                f"max_json_depth + 8 ({self.max_json_depth + 8}): a body wraps stored values"
            )
        return self

    @field_validator(
        "token_sha256", "read_only_token_sha256", "cors_origins", "allowed_hosts", mode="before"
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("token_sha256", "read_only_token_sha256")
    @classmethod
    def _digests(cls, digests: list[str]) -> list[str]:
        for digest in digests:
            if len(digest) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digest):
                raise ValueError(
                    "give SHA-256 hex digests of tokens (64 hex characters), not the tokens: "
                    "`sessiongraph hash-token` prints one"
                )
        return [digest.lower() for digest in digests]

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, hosts: list[str]) -> list[str]:
        names = []
        for host in hosts:
            name = host.lower()
            if name.startswith("[") and name.endswith("]"):
                name = name[1:-1]  # an IPv6 address, as a Host header writes it
            elif ":" in name or "/" in name or not name or any(c.isspace() for c in name):
                raise ValueError(
                    f"{host!r}: give host names as the Host header names them, without a "
                    "scheme, port or path (example.com, *.example.com, [::1])"
                )
            names.append(name)
        return names

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str) -> str:
        scheme = url.split("://", 1)[0]
        if scheme == "sqlite":
            return "sqlite+aiosqlite" + url[len("sqlite") :]
        if scheme in {"postgres", "postgresql"}:
            return "postgresql+asyncpg" + url[len(scheme) :]
        if scheme not in {"sqlite+aiosqlite", "postgresql+asyncpg"}:
            raise ValueError(
                f"unsupported database URL scheme {scheme!r}: "
                "use sqlite+aiosqlite:// or postgresql+asyncpg://"
            )
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def graphiql_enabled(self) -> bool:
        return self.graphiql if self.graphiql is not None else not self.is_production

    @property
    def introspection_enabled(self) -> bool:
        return self.introspection if self.introspection is not None else not self.is_production

    @property
    def auth_required(self) -> bool:
        return bool(self.token_sha256 or self.read_only_token_sha256)


def token_digest(token: str) -> str:
    """The SHA-256 hex digest a token is configured by."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
