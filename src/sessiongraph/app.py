"""The ASGI application: GraphQL at /graphql (HTTP and WebSocket), health at /healthz,
GraphiQL's files under /graphiql/static/."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from sessiongraph.admission import Admission
from sessiongraph.auth import Authenticator
from sessiongraph.config import Settings
from sessiongraph.db import migrate, queries
from sessiongraph.db.checkpoints import Checkpointer
from sessiongraph.db.engine import create_engine, warm_pool
from sessiongraph.errors import ErrorCode
from sessiongraph.events import create_broker
from sessiongraph.graphiql.page import STATIC_PATH, PageFirst, static_file
from sessiongraph.graphql.context import Context
from sessiongraph.graphql.cursors import CursorCodec
from sessiongraph.graphql.persisted import PersistedQueries
from sessiongraph.graphql.schema import build_schema
from sessiongraph.graphql.view import GraphQLView
from sessiongraph.guard import RequestGuard, error_response
from sessiongraph.hosts import HostCheck

logger = logging.getLogger("sessiongraph")

HEALTH_TIMEOUT_SECONDS = 2.0


def create_app(settings: Settings | None = None, *, listening_on: str | None = None) -> Starlette:
    """The app for ``settings`` (the environment's when omitted); the lifespan owns the engine.

    ``listening_on`` is the address the server binds, where the caller knows it (``serve``
    does): it decides which Host names are answered (``hosts.py``).
    """
    settings = settings or Settings()
    engine = create_engine(settings, background_checkpoints=True)
    checkpoints = Checkpointer(engine)
    cursors = CursorCodec(settings.cursor_secret)
    events = create_broker(engine, capacity=settings.subscriber_queue_size)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # The embedded SQLite default upgrades itself; a shared server is upgraded
        # deliberately, with `sessiongraph db upgrade`.
        await migrate.ensure_current(engine, auto_upgrade=settings.is_sqlite)
        if not settings.is_sqlite:  # SQLite opens a file: nothing to gain
            await warm_pool(engine, settings.pool_size)
        await checkpoints.start()
        await events.start()
        try:
            yield
        finally:
            await events.stop()
            await queries.drain()
            await checkpoints.stop()
            await engine.dispose()

    async def healthz(_request: Request) -> JSONResponse:
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS):
                await queries.ping(engine=engine)
        except Exception as error:  # any failure means "not ready", never a 500
            logger.warning("health check failed: %s", error)
            return JSONResponse(
                {"status": "unavailable", "database": "unreachable", "error": type(error).__name__},
                status_code=503,
            )
        return JSONResponse({"status": "ok", "database": "ok"})

    authenticator = Authenticator(settings)
    schema = build_schema(settings)
    graphql = GraphQLView(
        schema,
        settings=settings,
        context_factory=lambda access: Context.create(engine, settings, cursors, events, access),
        authenticator=authenticator,
        persisted=PersistedQueries(settings),
    )
    # Only a request the guard let through takes a place in the queue: one refused for
    # its token or its body is answered as such, whatever the load.
    admitted = Admission(
        graphql,
        limit=settings.max_concurrent_requests,
        queue_size=settings.request_queue_size,
        queue_timeout=settings.request_queue_timeout_seconds,
    )
    # The guard wraps the GraphQL endpoint itself, so it runs for whatever path routes
    # there (a root path or a mount included), and for nothing else.
    guarded = RequestGuard(admitted, settings=settings, authenticator=authenticator)
    # Outermost: a request for a host not allowed gets nothing else, CORS headers included.
    middleware = [
        Middleware(HostCheck, allowed=settings.allowed_hosts, listening_on=listening_on),
    ]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type"],
                max_age=600,
            ),
        )
    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        # Every method: the guard refuses the others in the GraphQL error shape. A
        # browser's GET gets the GraphiQL page (public: it holds no data) before it.
        Route("/graphql", PageFirst(guarded) if settings.graphiql_enabled else guarded),
        WebSocketRoute("/graphql", guarded),
    ]
    if settings.graphiql_enabled:
        routes.append(Route(f"{STATIC_PATH}/{{path:path}}", static_file, methods=["GET"]))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: routing_error},
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.settings = settings
    app.state.events = events
    app.state.schema = schema
    app.state.admission = admitted
    return app


async def routing_error(_request: Request, error: Exception) -> Response:
    """Starlette's refusals (no such path, a method the path does not serve) in the
    GraphQL error shape, as every other refusal."""
    assert isinstance(error, HTTPException)
    code = ErrorCode.BAD_USER_INPUT if error.status_code < 500 else ErrorCode.INTERNAL
    headers = dict(error.headers) if error.headers else None
    return error_response(error.status_code, error.detail, code, headers=headers)
