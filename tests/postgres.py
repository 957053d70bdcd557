"""A throwaway PostgreSQL server from the installed binaries, for tests and benchmarks.

``SESSIONGRAPH_TEST_POSTGRES_URL`` names an existing server instead. Started as
root, the server runs as the ``postgres`` user (PostgreSQL refuses root).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

URL_VARIABLE = "SESSIONGRAPH_TEST_POSTGRES_URL"


class PostgresUnavailable(RuntimeError):
    pass


def find_bindir() -> Path | None:
    """The newest installed PostgreSQL's bin directory, if any."""
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        return Path(os.path.realpath(pg_ctl)).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4])
    )
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PostgresServer:
    url: str
    #: Restarts the server (fast shutdown: its clients' connections are closed), or None
    #: for a server named by URL_VARIABLE, which is not ours to restart.
    restart: Callable[[], None] | None = None


@contextmanager
def throwaway_postgres(*, settings: dict[str, str] | None = None) -> Iterator[str]:
    """Yields an asyncpg URL of a fresh server; stops it and deletes its files afterwards."""
    with throwaway_server(settings=settings) as server:
        yield server.url


@contextmanager
def throwaway_server(*, settings: dict[str, str] | None = None) -> Iterator[PostgresServer]:
    """``throwaway_postgres``, yielding the server itself."""
    if os.environ.get(URL_VARIABLE):
        yield PostgresServer(os.environ[URL_VARIABLE])
        return
    bindir = find_bindir()
    if bindir is None:
        raise PostgresUnavailable(
            f"no PostgreSQL binaries found (pg_ctl) and {URL_VARIABLE} is not set"
        )
    folder = Path(tempfile.mkdtemp(prefix="sessiongraph-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable("running as root and there is no postgres user") from None
        os.chown(folder, user.pw_uid, user.pw_gid)
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        run_as = [runuser, "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()
    options = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": str(folder),
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        **(settings or {}),
    }
    option_text = " ".join(f"-c {key}={value}" for key, value in options.items())

    def run(*command: str) -> None:
        subprocess.run([*run_as, *command], check=True, capture_output=True, cwd=folder)

    try:
        run(
            str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        run(
            str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"),
            "-w", "-t", "60", "-o", option_text, "start",
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as error:
        log = folder / "server.log"
        if log.exists():
            detail = log.read_text()
        elif isinstance(error, subprocess.CalledProcessError):
            detail = error.stderr.decode(errors="replace")
        else:
            detail = str(error)
        shutil.rmtree(folder, ignore_errors=True)
        raise PostgresUnavailable(f"could not start PostgreSQL: {detail}") from error

    def restart() -> None:
        run(
            str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"),
            "-w", "-t", "60", "-m", "fast", "-o", option_text, "restart",
        )  # fmt: skip

    try:
        yield PostgresServer(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres", restart)
    finally:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(folder, ignore_errors=True)
