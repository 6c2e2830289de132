"""WebSocket by hand over a socket, for clients no library will imitate: one that completes
the handshake and never reads again, one that sends a frame far over the limit, one that
sends a header declaring a huge frame and waits to see whether the server reads it."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
from typing import Any

from tests.support.rawhttp import connect, request_head

WS_PATH = "/v1/audio/speech/ws"
TEXT, BINARY, CLOSE, PING = 0x1, 0x2, 0x8, 0x9


def frame_header(length: int, opcode: int = TEXT, mask: bytes = b"\0\0\0\0") -> bytes:
    """A client frame's header (FIN set, masked, as clients must), for a payload of `length`."""
    head = bytes([0x80 | opcode])
    if length < 126:
        head += bytes([0x80 | length])
    elif length < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", length)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", length)
    return head + mask


def frame(payload: bytes, opcode: int = TEXT) -> bytes:
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return frame_header(len(payload), opcode, mask) + masked


def handshake(
    port: int, receive_buffer: int | None = None, headers: dict[str, str] | None = None, path: str = WS_PATH
) -> socket.socket:
    """A connected WebSocket (on `path`) after its 101; nothing after the response head has been read."""
    sock = connect(port, receive_buffer=receive_buffer)
    key = base64.b64encode(os.urandom(16)).decode()
    upgrade = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Version": "13",
        **(headers or {}),
    }
    sock.sendall(request_head("GET", path, upgrade))
    sock.settimeout(60)
    head = b""
    while b"\r\n\r\n" not in head:
        byte = sock.recv(1)  # byte by byte: not one byte past the head is taken
        if not byte:
            raise ConnectionError(f"closed during the handshake: {head!r}")
        head += byte
    status = int(head.split(b" ", 2)[1])
    if status != 101:
        raise ConnectionError(f"handshake answered {status}: {head!r}")
    return sock


def send_json(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(frame(json.dumps(message).encode()))


def read_close(sock: socket.socket, timeout: float = 60.0) -> tuple[int, str]:
    """Read frames until the server's close frame; its code and reason (1006 when the
    connection ends without one)."""
    sock.settimeout(timeout)
    buffer = b""

    def take(count: int) -> bytes:
        nonlocal buffer
        while len(buffer) < count:
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError
            buffer += chunk
        data, buffer = buffer[:count], buffer[count:]
        return data

    try:
        while True:
            first, second = take(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", take(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", take(8))
            payload = take(length)
            if first & 0x0F == CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                return code, payload[2:].decode("utf-8", "replace")
    except (EOFError, ConnectionError):
        return 1006, ""
