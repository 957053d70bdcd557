"""The ``sessiongraph`` command: serve, seed, export-schema."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sessiongraph.config import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine
    from starlette.applications import Starlette

DEFAULT_SCHEMA_PATH = Path("schema.graphql")
#: `import --max-record-mb`'s default: ``sessiongraph.importer.MAX_RECORD_BYTES``.
MAX_RECORD_MB = 64
#: The address `serve --workers` binds, handed to its workers (not a setting: `--host` is).
LISTENING_ON = "SESSIONGRAPH_SERVE_HOST"
#: Back to the start of the line, and clear it (a progress line on a terminal).
CLEAR_LINE = "\r\x1b[K"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.command
    return command(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sessiongraph", description="A GraphQL API over AI-agent sessions."
    )
    commands = parser.add_subparsers(title="commands", required=True)

    serve = commands.add_parser("serve", help="serve the API (GraphiQL at /graphql)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (8000)")
    _database_url_option(serve)
    serve.add_argument(
        "--no-demo-data",
        action="store_true",
        help="do not fill an empty default database with demo data",
    )
    serve.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="server processes (1); more than one needs PostgreSQL, which carries "
        "subscription events between them",
    )
    serve.add_argument("--log-level", default="info", help="uvicorn log level (info)")
    serve.set_defaults(command=serve_command)

    seed = commands.add_parser("seed", help="fill the database with deterministic demo data")
    seed.add_argument("--sessions", type=_positive, default=200, help="sessions to create (200)")
    seed.add_argument("--seed", type=int, default=7, help="random seed (7)")
    seed.add_argument(
        "--reset", action="store_true", help="delete every session first (else refuse if any)"
    )
    _database_url_option(seed)
    seed.set_defaults(command=seed_command)

    export = commands.add_parser("export-schema", help="write the GraphQL schema (SDL)")
    export.add_argument(
        "--output",
        default=str(DEFAULT_SCHEMA_PATH),
        help="file to write, or - for standard output (schema.graphql)",
    )
    export.add_argument(
        "--check", action="store_true", help="exit 1 if the file differs instead of writing it"
    )
    export.set_defaults(command=export_schema_command)

    load = commands.add_parser(
        "import", help="load the REST API's JSON (GET /sessions, GET /sessions/{id}, JSON Lines)"
    )
    load.add_argument("file", type=Path, help="a JSON or JSON Lines file")
    load.add_argument(
        "--max-record-mb",
        type=_positive,
        default=MAX_RECORD_MB,
        help=f"skip (and report) a line or record larger than this many MiB ({MAX_RECORD_MB})",
    )
    _database_url_option(load)
    load.set_defaults(command=import_command)

    token = commands.add_parser(
        "hash-token", help="print a bearer token's SHA-256 digest (for the token settings)"
    )
    token.add_argument(
        "token", nargs="?", help="the token; a new random one is made (and printed) when absent"
    )
    token.set_defaults(command=hash_token_command)

    db = commands.add_parser("db", help="database schema migrations")
    db_commands = db.add_subparsers(title="db commands", required=True)
    upgrade = db_commands.add_parser("upgrade", help="bring the schema up to this version")
    _database_url_option(upgrade)
    upgrade.set_defaults(command=db_upgrade_command)
    current = db_commands.add_parser("current", help="print the schema revision")
    _database_url_option(current)
    current.set_defaults(command=db_current_command)
    return parser


def _database_url_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        help="database URL (default: $SESSIONGRAPH_DATABASE_URL, else ./sessiongraph.db)",
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _settings(args: argparse.Namespace) -> Settings:
    if args.database_url:
        return Settings(database_url=args.database_url)
    return Settings()


@contextlib.contextmanager
def quick_imports() -> Iterator[None]:
    """No garbage collection while the block imports modules.

    Importing the server's modules (SQLAlchemy, Strawberry, graphql-core, pydantic, the
    schema's types) makes a great many objects and almost no garbage, and the collector,
    run every 700 new objects, walked all of them again and again: 0.25 s of the 1.4 s
    of CPU the imports took here, a sixth of a start. What does become garbage is
    collected once at the end (and, for `serve`, before the rest is frozen).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def serve_command(args: argparse.Namespace) -> int:
    with quick_imports():
        import uvicorn

        from sessiongraph import serving
        from sessiongraph.app import create_app
        from sessiongraph.db.migrate import SchemaBehind

    settings = _settings(args)
    if args.workers > 1 and settings.is_sqlite:
        print(
            "--workers needs PostgreSQL: SQLite serves one process, whose subscribers "
            "would miss the other workers' writes.",
            file=sys.stderr,
        )
        return 2
    explicit = bool(args.database_url or os.environ.get("SESSIONGRAPH_DATABASE_URL"))
    try:
        asyncio.run(_prepare(settings, demo_data=not explicit and not args.no_demo_data))
    except SchemaBehind as error:
        print(error, file=sys.stderr)
        return 1
    # A WebSocket message is held to the same limit as a request body.
    options = {
        "ws_max_size": settings.max_body_bytes,
        "log_level": args.log_level,
        "http": serving.protocol(settings),
    }
    if args.workers == 1:
        app = create_app(settings, listening_on=args.host)
        uvicorn.run(_frozen(app), host=args.host, port=args.port, **options)
        return 0
    # Workers build their app from the environment: hand them this one's settings,
    # including the cursor secret, so a cursor from one worker is good on another.
    os.environ["SESSIONGRAPH_DATABASE_URL"] = settings.database_url
    os.environ["SESSIONGRAPH_CURSOR_SECRET"] = settings.cursor_secret
    os.environ[LISTENING_ON] = args.host
    worker = {"factory": True, "workers": args.workers, "host": args.host, "port": args.port}
    if not serving.BALANCED_REUSEPORT:  # uvicorn's workers, on one shared socket
        uvicorn.run("sessiongraph.cli:worker_app", **worker, **options)
        return 0
    config = uvicorn.Config("sessiongraph.cli:worker_app", **worker, **options)
    return serving.run_workers(config, args.workers)


def worker_app() -> Starlette:
    """The app of one `serve --workers` process, from the environment."""
    with quick_imports():
        from sessiongraph.app import create_app

    return _frozen(create_app(listening_on=os.environ.get(LISTENING_ON)))


def _frozen(app: Starlette) -> Starlette:
    # What exists once the app is built (modules, the schema) lives as long as the
    # process: moved out of the collector's sight, it is no longer walked by every full
    # collection, which large responses trigger often. The garbage of start-up goes first.
    gc.collect()
    gc.freeze()
    return app


async def _prepare(settings: Settings, *, demo_data: bool) -> None:
    """Check (or, on SQLite, upgrade) the schema; fill an empty default database."""
    from sessiongraph.db.engine import create_engine, is_empty
    from sessiongraph.db.migrate import ensure_current

    engine = create_engine(settings)
    try:
        await ensure_current(engine, auto_upgrade=settings.is_sqlite)
        if demo_data and await is_empty(engine):
            from sessiongraph.seed import seed_demo_data  # only then: it takes a while

            print("Empty database: adding demo data.", file=sys.stderr)
            await seed_demo_data(engine, progress=_progress_printer())
    finally:
        await engine.dispose()


def seed_command(args: argparse.Namespace) -> int:
    return asyncio.run(_seed(_settings(args), args.sessions, args.seed, reset=args.reset))


async def _seed(settings: Settings, sessions: int, seed: int, *, reset: bool) -> int:
    from sessiongraph.db.engine import clear_data, create_engine, is_empty
    from sessiongraph.db.migrate import SchemaBehind, ensure_current
    from sessiongraph.seed import seed_demo_data

    engine = create_engine(settings)
    try:
        try:
            await ensure_current(engine, auto_upgrade=settings.is_sqlite)
        except SchemaBehind as error:
            print(error, file=sys.stderr)
            return 1
        if not await is_empty(engine):
            if not reset:
                print(
                    "The database already has sessions; pass --reset to replace them.",
                    file=sys.stderr,
                )
                return 1
            await clear_data(engine)
        started = time.perf_counter()
        report = await seed_demo_data(
            engine, sessions=sessions, seed=seed, progress=_progress_printer()
        )
    finally:
        await engine.dispose()
    print(
        f"Seeded {report.sessions} sessions, {report.operations} operations and "
        f"{report.workflows} workflows in {time.perf_counter() - started:.1f}s.",
        file=sys.stderr,
    )
    return 0


def _progress_printer() -> Callable[[int, int], None]:
    """Prints progress once seeding has taken more than a moment."""
    started = time.perf_counter()

    def show(done: int, total: int) -> None:
        if time.perf_counter() - started < 0.5 and done < total:
            return
        end = "\n" if done >= total else ""
        print(f"\r  {done}/{total} sessions", end=end, file=sys.stderr, flush=True)

    return show


def export_schema_command(args: argparse.Namespace) -> int:
    from sessiongraph.graphql.schema import build_schema

    # What settings decide (limits, introspection...) never shows in the SDL.
    sdl = build_schema(Settings.model_construct()).as_str() + "\n"
    if args.output == "-":
        sys.stdout.write(sdl)
        return 0
    path = Path(args.output)
    if args.check:
        if not path.exists() or path.read_text(encoding="utf-8") != sdl:
            print(f"{path} is out of date: run `sessiongraph export-schema`.", file=sys.stderr)
            return 1
        return 0
    path.write_text(sdl, encoding="utf-8")
    print(f"Wrote {path}.", file=sys.stderr)
    return 0


def db_upgrade_command(args: argparse.Namespace) -> int:
    from sessiongraph.db import migrate

    async def run() -> tuple[str | None, str | None]:
        engine = _engine(args)
        try:
            before = await migrate.current_revision(engine)
            await migrate.upgrade(engine)
            return before, await migrate.current_revision(engine)
        finally:
            await engine.dispose()

    before, after = asyncio.run(run())
    if before == after:
        print(f"Schema already at {after} (head).", file=sys.stderr)
    else:
        print(f"Upgraded schema from {before or 'empty'} to {after}.", file=sys.stderr)
    return 0


def db_current_command(args: argparse.Namespace) -> int:
    from sessiongraph.db import migrate

    async def run() -> str | None:
        engine = _engine(args)
        try:
            return await migrate.current_revision(engine)
        finally:
            await engine.dispose()

    current, head = asyncio.run(run()), migrate.head_revision()
    state = "head" if current == head else f"behind: head is {head}"
    print(f"{current or 'none (empty database)'} ({state})")
    return 0 if current == head else 1


def _engine(args: argparse.Namespace) -> AsyncEngine:
    from sessiongraph.db.engine import create_engine

    return create_engine(_settings(args))


def import_command(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from sessiongraph.db.migrate import SchemaBehind, ensure_current
    from sessiongraph.importer import ImportReport, import_file

    if not args.file.is_file():
        print(f"No such file: {args.file}", file=sys.stderr)
        return 2
    settings = _settings(args)
    # Progress rewrites one line, so only on a terminal; skipped records are listed as
    # they are found (each batch's once it is written), in file order.
    live = sys.stderr.isatty()

    def show(report: ImportReport) -> None:
        if live:
            print(
                f"\r  {report.sessions} sessions, {report.operations} operations",
                end="",
                file=sys.stderr,
                flush=True,
            )

    def skipped(where: str, reason: str) -> None:
        print(f"{CLEAR_LINE if live else ''}  {where}: {reason}", file=sys.stderr)

    async def run() -> ImportReport:
        engine = _engine(args)
        try:
            await ensure_current(engine, auto_upgrade=settings.is_sqlite)
            return await import_file(
                engine,
                args.file,
                progress=show,
                on_skip=skipped,
                max_record_bytes=args.max_record_mb * 2**20,
                max_json_depth=settings.max_json_depth,
            )
        finally:
            await engine.dispose()

    started = time.perf_counter()
    try:
        report = asyncio.run(run())
    except SchemaBehind as error:
        print(error, file=sys.stderr)
        return 1
    except (sa.exc.DBAPIError, OSError) as error:
        cause = str(getattr(error, "orig", None) or error).strip().splitlines()
        print(
            f"{CLEAR_LINE if live else ''}The database failed: "
            f"{cause[0] if cause else type(error).__name__}. "
            f"The batches written before it stay; importing the file again completes it.",
            file=sys.stderr,
        )
        return 1
    print(
        f"{CLEAR_LINE if live else ''}Imported {report.sessions} sessions, "
        f"{report.operations} operations and {report.workflows} workflows in "
        f"{time.perf_counter() - started:.1f}s; skipped {report.skipped_count}.",
        file=sys.stderr,
    )
    return 0 if not report.skipped_count else 3


def hash_token_command(args: argparse.Namespace) -> int:
    import secrets

    from sessiongraph.config import token_digest

    token = args.token
    if token is None:
        token = secrets.token_urlsafe(32)
        print(f"token:  {token}")
        print(f"sha256: {token_digest(token)}")
    else:
        print(token_digest(token))
    return 0
