"""A client that stops reading loses its job after SEND_TIMEOUT (test_stalled_clients.py), and
the server lets go of its socket too, on every door that writes to one: the connection is
aborted, not closed politely behind megabytes of audio that would keep it ESTABLISHED until
the client closes it. Raw sockets with a tiny receive window that never read; the server's
side of each connection is looked up in the kernel's table."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from wyoming.tts import Synthesize

from tests.support import rawws
from tests.support.engine_control import wait_until
from tests.support.live_server import LiveServer, RecordCollector, free_port, live_server
from tests.support.rawhttp import connect, post_json
from tests.support.tcp import server_side_established
from tests.support.wyoming_client import encode_event, narrow_send_buffer, raw_connect

LONG = " ".join(f"Sentence number {i} keeps the stream going for a while." for i in range(40))
OMNI_PATH = "/v1/audio/speech/stream"


def http(server: LiveServer, request_id: str) -> tuple[socket.socket, int]:
    sock = connect(server.port, receive_buffer=4096)
    body = {"voice": "alloy", "input": LONG, "response_format": "pcm"}
    post_json(sock, "/v1/audio/speech", body, {"X-Request-ID": request_id})
    return sock, server.port


def websocket(server: LiveServer, request_id: str) -> tuple[socket.socket, int]:
    sock = rawws.handshake(server.port, receive_buffer=4096, headers={"X-Request-ID": request_id})
    rawws.send_json(sock, {"input": LONG, "voice": "alloy", "sample_rate": 48000})
    return sock, server.port


def omni(server: LiveServer, request_id: str) -> tuple[socket.socket, int]:
    sock = rawws.handshake(server.port, receive_buffer=4096, headers={"X-Request-ID": request_id}, path=OMNI_PATH)
    config = {"type": "session.config", "voice": "alloy", "response_format": "pcm", "stream_audio": True}
    rawws.send_json(sock, config)
    rawws.send_json(sock, {"type": "input.text", "text": LONG})
    rawws.send_json(sock, {"type": "input.done"})
    return sock, server.port


def wyoming(server: LiveServer, request_id: str) -> tuple[socket.socket, int]:
    port = server.app.state.wyoming.port
    sock = raw_connect(port, receive_buffer=4096)
    sock.sendall(encode_event(Synthesize(text=LONG).event()))
    return sock, port


DOORS: dict[str, Callable[[LiveServer, str], tuple[socket.socket, int]]] = {
    "http": http,
    "websocket": websocket,
    "vllm-omni": omni,
    "wyoming": wyoming,
}


@pytest.fixture(scope="module")
def stalling(custom_voice_dir: Path) -> Iterator[LiveServer]:
    with live_server(
        send_buffer=4096,
        model_id=str(custom_voice_dir),
        preload_model=True,
        send_timeout=1.0,
        max_new_tokens=32,
        wyoming_port=free_port(),
        wyoming_host="127.0.0.1",
    ) as server:
        narrow_send_buffer(server)
        yield server


@pytest.mark.parametrize("door", sorted(DOORS))
def test_a_stalled_reader_is_aborted(stalling: LiveServer, request_log: RecordCollector, door: str) -> None:
    with RecordCollector().attached("uvicorn.error", logging.ERROR) as server_errors:
        sock, port = DOORS[door](stalling, f"abort-{door}")
        client_port = sock.getsockname()[1]
        try:
            assert server_side_established(port, client_port)
            [line] = request_log.wait_for_requests(1, timeout=120)
            assert line["status"] == 499 and "stopped reading" in line["error"], line
            # Let go of: not ESTABLISHED with the unsent audio queued until the client closes.
            wait_until(lambda: not server_side_established(port, client_port))
        finally:
            sock.close()
    # Dropped on purpose, not reported as an app that failed to complete its response.
    assert server_errors.records == []
