"""The kernel's view of this machine's TCP connections (/proc/net/tcp), for tests that must
see whether the server really let go of a socket: a connection it gave up on but only
closed politely stays ESTABLISHED, its unsent bytes queued, until the client closes it."""

from __future__ import annotations

from pathlib import Path

ESTABLISHED = "01"  # the state column's code (include/net/tcp_states.h)


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1], 16)


def states(local_port: int, remote_port: int) -> list[str]:
    """The states (hex codes) of the sockets whose local port is `local_port` and whose peer's
    port is `remote_port`: the server's side of one client's connection."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if _port(fields[1]) == local_port and _port(fields[2]) == remote_port:
                found.append(fields[3])
    return found


def server_side_established(server_port: int, client_port: int) -> bool:
    """Whether the server still holds the connection from `client_port` open."""
    return ESTABLISHED in states(server_port, client_port)
