"""Which process holds which TCP socket of a local port, read from /proc (Linux only):
how the tests and bench/workers.py see which `serve --workers` process has a connection,
without asking the server."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

LISTEN, ESTABLISHED = "0A", "01"


@dataclass(frozen=True)
class TcpSocket:
    remote_port: int
    inode: int
    state: str


def tcp_sockets(port: int) -> list[TcpSocket]:
    """Every IPv4 TCP socket whose local port is ``port``."""
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            remote_port = int(fields[2].split(":")[1], 16)
            found.append(TcpSocket(remote_port, int(fields[9]), fields[3]))
    return found


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets ``pid`` has open."""
    inodes = set()
    try:
        fds = list(os.scandir(f"/proc/{pid}/fd"))
    except OSError:  # gone, or not ours to read
        return inodes
    for fd in fds:
        try:
            target = os.readlink(fd.path)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def pids() -> list[int]:
    return [int(entry.name) for entry in os.scandir("/proc") if entry.name.isdigit()]


def listeners(port: int) -> dict[int, set[int]]:
    """The processes with a socket listening on ``port``, and those sockets' inodes."""
    listening = {s.inode for s in tcp_sockets(port) if s.state == LISTEN}
    held = {pid: socket_inodes(pid) & listening for pid in pids()}
    return {pid: inodes for pid, inodes in held.items() if inodes}


def holders(port: int, client_ports: list[int]) -> list[int | None]:
    """For each client port, the process holding the server end of its connection to
    ``port`` (None when none is found)."""
    ends = {s.remote_port: s.inode for s in tcp_sockets(port) if s.state == ESTABLISHED}
    owner = {inode: pid for pid in listeners(port) for inode in socket_inodes(pid)}
    return [owner.get(ends.get(client, -1)) for client in client_ports]
