"""The three servers of the peer benchmark, the npm packages they need, and /proc accounting.

The npm packages are installed from the lock files next to this module into
``bench/peers/.cache/`` (ignored by git), once per lock: each of ``tools/``,
``postgraphile4/`` and ``postgraphile5/`` is copied there and ``npm ci`` runs when
its lock changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
PACKAGES = ("tools", "postgraphile4", "postgraphile5")
TICKS = os.sysconf("SC_CLK_TCK")


# -- npm ---------------------------------------------------------------------------------


def install_packages() -> Path:
    """Installs every package (when its lock changed); returns the node >= 22 binary."""
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is needed to install PostGraphile and autocannon")
    for name in PACKAGES:
        source, target = HERE / name, CACHE / name
        target.mkdir(parents=True, exist_ok=True)
        for item in source.iterdir():
            shutil.copy2(item, target / item.name)
        lock = hashlib.sha256((source / "package-lock.json").read_bytes()).hexdigest()
        stamp = target / ".installed"
        if stamp.exists() and stamp.read_text() == lock and (target / "node_modules").exists():
            continue
        print(f"npm ci in {target.relative_to(HERE.parent.parent)} ...", file=sys.stderr)
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=target, check=True
        )
        stamp.write_text(lock)
    node = CACHE / "tools" / "node_modules" / "node" / "bin" / "node"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    if int(version.stdout.strip().lstrip("v").split(".")[0]) < 22:
        raise SystemExit(f"{node} is {version.stdout.strip()}; PostGraphile v5 needs node >= 22")
    return node


def node_version(node: Path) -> str:
    return subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()


# -- the servers -------------------------------------------------------------------------


@dataclass
class Server:
    """One server under test: how to start it and where it answers."""

    key: str
    label: str
    command: list[str]
    env: dict[str, str]
    cwd: Path
    port: int
    health: str  # "GET /healthz" or a GraphQL POST
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    def start(self, log: Path) -> None:
        self.log = log
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, stopped as one below
            )

    def wait_ready(self, headers: dict[str, str], seconds: float = 120) -> None:
        assert self.process is not None
        deadline = time.monotonic() + seconds
        with httpx.Client(timeout=5) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise SystemExit(f"{self.label} exited at start; see {self.log}")
                try:
                    if self.health == "GET /healthz":
                        response = http.get(f"http://127.0.0.1:{self.port}/healthz")
                    else:
                        response = http.post(self.url, json={"query": self.health}, headers=headers)
                    if response.status_code == 200 and b'"errors"' not in response.content:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        raise SystemExit(f"{self.label} did not become ready; see {self.log}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=15)
        # Whatever is left of its process group (workers that outlived their parent).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def node_url(sqlalchemy_url: str) -> str:
    """postgresql+asyncpg://... as node-postgres spells it."""
    return "postgres://" + sqlalchemy_url.split("://", 1)[1]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("SESSIONGRAPH_", "PG"))}


def sessiongraph(url: str, workers: int, token_digest: str) -> Server:
    env = _clean_env() | {
        "SESSIONGRAPH_ENV": "production",
        "SESSIONGRAPH_READ_ONLY_TOKEN_SHA256": token_digest,
        "SESSIONGRAPH_CURSOR_SECRET": "peer-benchmark-cursor-secret",
    }
    port = free_port()
    command = [
        sys.executable, "-m", "sessiongraph", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--database-url", url, "--log-level", "warning", "--workers", str(workers),
    ]  # fmt: skip
    return Server("sessiongraph", "sessiongraph", command, env, HERE, port, "GET /healthz")


def postgraphile4(node: Path, url: str, workers: int) -> Server:
    cwd = CACHE / "postgraphile4"  # where the CLI finds .postgraphilerc.js
    port = free_port()
    command = [
        str(node), "node_modules/postgraphile/cli.js", "--connection", node_url(url),
        "--schema", "public", "--host", "127.0.0.1", "--port", str(port),
        "--disable-graphiql", "--disable-query-log", "--dynamic-json",
        "--no-setof-functions-contain-nulls", "--no-ignore-rbac",
    ]  # fmt: skip
    if workers > 1:
        command += ["--cluster-workers", str(workers)]
    env = _clean_env() | {"NODE_ENV": "production"}
    return Server("postgraphile4", "PostGraphile 4", command, env, cwd, port, "{ __typename }")


def postgraphile5(node: Path, url: str, workers: int) -> Server:
    cwd = CACHE / "postgraphile5"
    port = free_port()
    command = [str(node), "server.mjs", "--port", str(port), "--workers", str(workers)]
    env = _clean_env() | {"NODE_ENV": "production", "DATABASE_URL": node_url(url)}
    return Server("postgraphile5", "PostGraphile 5", command, env, cwd, port, "{ __typename }")


def package_version(name: str) -> str:
    import json

    manifest = CACHE / name / "node_modules" / "postgraphile" / "package.json"
    return str(json.loads(manifest.read_text())["version"])


# -- /proc -------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def tree(root: int) -> list[int]:
    """root and all its descendants."""
    children = _children()
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def cpu_seconds(root: int) -> float:
    """CPU time of a process tree: each live process's own time plus that of the children
    it has reaped, so a process that exits between two readings is still counted."""
    total = 0
    for pid in tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return total / TICKS


def rss_mib(root: int) -> float:
    """Resident memory of a process tree (shared pages count once per process)."""
    total = 0
    for pid in tree(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def wait_idle(roots: list[int], cores: float = 0.1, limit: float = 120) -> float:
    """Waits until the process trees use less than ``cores`` together (a server may still be
    working on the requests of a load run that has ended); returns the seconds waited."""
    started = time.monotonic()
    last = sum(cpu_seconds(root) for root in roots)
    while time.monotonic() - started < limit:
        time.sleep(0.5)
        now = sum(cpu_seconds(root) for root in roots)
        if now - last < cores * 0.5:
            break
        last = now
    return time.monotonic() - started


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, summed over its cores."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / TICKS, sum(fields) / TICKS
