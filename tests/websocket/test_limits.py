"""A WebSocket message is held to MAX_JSON_BYTES, the limit of an HTTP body: a frame that
declares more is refused from its header (close 1009) before its payload is read, and the
session refuses one the same way where the server in front did not (a proxy with its own,
larger limit)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import rawws
from tests.support.live_server import LiveServer, live_server

MESSAGE_TOO_BIG = 1009


@pytest.fixture(scope="module")
def limited(custom_voice_dir: Path) -> Iterator[LiveServer]:
    with live_server(model_id=str(custom_voice_dir), max_json_bytes=64 * 1024) as server:
        yield server


def test_a_frame_declaring_more_than_the_limit_is_refused_from_its_header(limited: LiveServer) -> None:
    sock = rawws.handshake(limited.port)
    with sock:
        # 16 MiB declared, 1,000 bytes sent: the answer must not wait for the rest.
        sock.sendall(rawws.frame_header(16 * 1024 * 1024) + b"x" * 1000)
        code, reason = rawws.read_close(sock, timeout=30)
    assert code == MESSAGE_TOO_BIG, (code, reason)
    assert str(64 * 1024) in reason


def test_a_message_just_over_the_limit_is_refused_and_one_under_it_is_served(limited: LiveServer) -> None:
    limit = limited.settings.max_json_bytes
    under = json.dumps({"input": "Hi.", "voice": "nobody", "padding": "x" * (limit - 200)}).encode()
    with rawws.handshake(limited.port) as sock:
        sock.sendall(rawws.frame(under))
        assert b'"event":"error"' in sock.recv(65536)  # parsed and answered: an unknown voice
        sock.sendall(rawws.frame(b" " * (limit + 1)))
        code, _ = rawws.read_close(sock, timeout=30)
    assert code == MESSAGE_TOO_BIG


def test_the_session_refuses_a_message_over_the_limit_that_the_server_in_front_let_through(
    custom_voice_dir: Path,
) -> None:
    # uvicorn's own default (16 MiB), as behind a proxy that does not know MAX_JSON_BYTES.
    with (
        live_server(
            model_id=str(custom_voice_dir),
            max_json_bytes=64 * 1024,
            uvicorn_overrides={"ws_max_size": 16 * 1024 * 1024},
        ) as server,
        rawws.handshake(server.port) as sock,
    ):
        sock.sendall(rawws.frame(b" " * (64 * 1024 + 1)))
        code, reason = rawws.read_close(sock, timeout=30)
    assert code == MESSAGE_TOO_BIG, (code, reason)
    assert "MAX_JSON_BYTES" in reason
