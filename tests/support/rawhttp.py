"""HTTP/1.1 by hand over a socket, for clients no library will imitate: one that never
reads its response, one that sends a body without end, one that declares a huge body and
waits to see whether the server answers before it is sent."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any


def connect(port: int, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        # Set before connecting, so the advertised window stays small: the server's sends
        # stall after a few tens of kilobytes instead of several megabytes.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect(("127.0.0.1", port))
    return sock


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def post_json(sock: socket.socket, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    payload = json.dumps(body).encode()
    head = {"Content-Type": "application/json", "Content-Length": str(len(payload)), **(headers or {})}
    sock.sendall(request_head("POST", path, head) + payload)


def read_status(sock: socket.socket, timeout: float = 60.0) -> int:
    """The status code of the response on `sock` (its head is read, the body is not)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"connection closed before a status line: {data!r}")
        data += chunk
    return int(data.split(b" ", 2)[1])


def send_until_answered(sock: socket.socket, chunks: Callable[[], bytes], limit: int) -> tuple[int, int]:
    """Send chunks until the server answers (or `limit` bytes went out); returns the status
    and the number of body bytes sent. A server that reads the whole body first would make
    this send all `limit` bytes."""
    sock.setblocking(False)
    sent = 0
    pending = b""
    response = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            response += sock.recv(4096)
        except BlockingIOError:
            pass
        except ConnectionError:
            break
        if b"\r\n" in response:
            break
        if sent < limit:
            pending = pending or chunks()
            try:
                written = sock.send(pending)
                pending = pending[written:]
                sent += written
            except BlockingIOError:
                time.sleep(0.01)
            except (BrokenPipeError, ConnectionResetError):
                break
        else:
            time.sleep(0.01)
    sock.setblocking(True)
    if b"\r\n" not in response:
        raise AssertionError(f"no answer after sending {sent} bytes")
    return int(response.split(b" ", 2)[1]), sent
