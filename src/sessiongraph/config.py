"""Settings, read from the environment (prefix ``SESSIONGRAPH_``) and validated at startup."""

from __future__ import annotations

import secrets

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    graphiql: bool = Field(default=True, description="Serve GraphiQL to browsers at /graphql.")
    pool_size: int = Field(default=5, ge=1, description="Database connections kept open.")
    max_overflow: int = Field(
        default=10, ge=0, description="Connections opened beyond pool_size under load."
    )
    pool_timeout_seconds: float = Field(
        default=10.0, gt=0, description="How long a request waits for a free connection."
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
