"""Clients that stop reading: each send of a response chunk is bounded by SEND_TIMEOUT and
by the request's deadline; past either, the work stops, the queue slot is freed and the
request is logged as such. Raw sockets with a tiny receive window, which never read."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from wyoming.tts import Synthesize

from tests.support import rawws
from tests.support.live_server import LiveServer, RecordCollector, free_port, live_server
from tests.support.rawhttp import connect, post_json
from tests.support.wyoming_client import encode_event, narrow_send_buffer, raw_connect

LONG = " ".join(f"Sentence number {i} keeps the stream going for a while." for i in range(40))
BODY = {"model": "tts-1", "voice": "alloy", "input": LONG, "response_format": "pcm"}
# Paths a stalled reader can hold, with the request that streams on each.
STREAMS = [
    ("/v1/audio/speech", BODY),
    ("/v1/audio/speech/stream", BODY),
    ("/v1/audio/speech", {**BODY, "stream_format": "sse", "response_format": "wav"}),
]


def wait_for(predicate, timeout: float = 90.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@contextlib.contextmanager
def stalled(server: LiveServer, streams: list[tuple[str, dict[str, object]]], prefix: str) -> Iterator[list[str]]:
    """Open one never-reading connection per stream; yields their request ids."""
    sockets: list[socket.socket] = []
    ids = [f"{prefix}-{i}" for i in range(len(streams))]
    try:
        for request_id, (path, body) in zip(ids, streams, strict=True):
            sock = connect(server.port, receive_buffer=4096)
            post_json(sock, path, body, {"X-Request-ID": request_id})
            sockets.append(sock)
        yield ids
    finally:
        for sock in sockets:
            sock.close()


# A long utterance at 48 kHz: far more audio than the socket buffers hold.
WS_UTTERANCE = {"input": LONG, "voice": "alloy", "sample_rate": 48000}


@contextlib.contextmanager
def stalled_websockets(server: LiveServer, count: int, prefix: str) -> Iterator[list[str]]:
    """`count` WebSockets that complete the handshake, send one long utterance each and never
    read; yields the utterances' request ids."""
    sockets: list[socket.socket] = []
    try:
        for i in range(count):
            sock = rawws.handshake(server.port, receive_buffer=4096, headers={"X-Request-ID": f"{prefix}-{i}"})
            sockets.append(sock)
            rawws.send_json(sock, WS_UTTERANCE)
        yield [f"{prefix}-{i}-1" for i in range(count)]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture(scope="module")
def two_slots(custom_voice_dir: Path) -> Iterator[LiveServer]:
    with live_server(
        send_buffer=4096,
        model_id=str(custom_voice_dir),
        preload_model=True,
        max_queue_depth=3,
        send_timeout=2.0,
        max_new_tokens=32,
        wyoming_port=free_port(),
        wyoming_host="127.0.0.1",
    ) as server:
        yield server


def test_readers_that_stop_free_their_slots_within_the_send_timeout(
    two_slots: LiveServer, request_log: RecordCollector
) -> None:
    with stalled(two_slots, STREAMS, "stall") as ids:
        # Each stream takes a queue slot and gives it back once a send has waited SEND_TIMEOUT,
        # with the sockets still open.
        assert wait_for(lambda: two_slots.health()["queue_depth"] == 0)
        lines = [request_log.wait_for_request(request_id, timeout=30) for request_id in ids]
    for line in lines:
        assert line["status"] == 499, line
        assert "stopped reading" in line["error"]
        # The work stopped too: not all of the text was synthesised.
        assert line["segments_done"] < line["segments"]
    with two_slots.client() as client:
        response = client.post("/v1/audio/speech", json={**BODY, "input": "Still serving."})
    assert response.status_code == 200


def test_request_deadline_covers_sending(custom_voice_dir: Path, request_log: RecordCollector) -> None:
    with (
        live_server(
            send_buffer=4096,
            model_id=str(custom_voice_dir),
            preload_model=True,
            send_timeout=600,
            request_timeout=5,
            max_new_tokens=32,
        ) as server,
        stalled(server, STREAMS[:1], "deadline") as [request_id],
    ):
        line = request_log.wait_for_request(request_id, timeout=90)
        assert wait_for(lambda: server.health()["queue_depth"] == 0)
    # Either the engine's wait or the blocked send hit REQUEST_TIMEOUT first: 504 both ways,
    # long before the 600 s send timeout.
    assert line["status"] == 504, line
    assert line["segments_done"] < line["segments"]


def test_websocket_readers_that_stop_free_their_slots_within_the_send_timeout(
    two_slots: LiveServer, request_log: RecordCollector
) -> None:
    depth = two_slots.settings.max_queue_depth
    with stalled_websockets(two_slots, depth, "ws-stall") as ids:
        # Every slot taken by a reader that never reads: each is given back once a send has
        # waited SEND_TIMEOUT, with the sockets still open.
        lines = [request_log.wait_for_request(request_id, timeout=60) for request_id in ids]
        assert wait_for(lambda: two_slots.health()["queue_depth"] == 0)
        with two_slots.client() as client:
            response = client.post("/v1/audio/speech", json={**BODY, "input": "Still serving."})
        assert response.status_code == 200
    for line in lines:
        assert line["status"] == 499, line
        assert "stopped reading" in line["error"]
        assert line["segments_done"] < line["segments"]


def test_request_deadline_covers_websocket_sending(custom_voice_dir: Path, request_log: RecordCollector) -> None:
    with (
        live_server(
            send_buffer=4096,
            model_id=str(custom_voice_dir),
            preload_model=True,
            send_timeout=600,
            request_timeout=5,
            max_new_tokens=32,
        ) as server,
        stalled_websockets(server, 1, "ws-deadline") as [request_id],
    ):
        line = request_log.wait_for_request(request_id, timeout=90)
        assert wait_for(lambda: server.health()["queue_depth"] == 0)
    assert line["status"] == 504, line
    assert line["segments_done"] < line["segments"]


@contextlib.contextmanager
def stalled_wyoming(server: LiveServer, count: int) -> Iterator[None]:
    """`count` Wyoming connections that send one long `synthesize` each and never read."""
    narrow_send_buffer(server)
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = raw_connect(server.app.state.wyoming.port, receive_buffer=4096)
            sockets.append(sock)
            sock.sendall(encode_event(Synthesize(text=LONG).event()))
        yield
    finally:
        for sock in sockets:
            sock.close()


def test_wyoming_readers_that_stop_free_their_slots_within_the_send_timeout(
    two_slots: LiveServer, request_log: RecordCollector
) -> None:
    depth = two_slots.settings.max_queue_depth
    with stalled_wyoming(two_slots, depth):
        # Every slot taken by a reader that never reads: each is given back once an event's
        # write has waited SEND_TIMEOUT, with the sockets still open.
        lines = request_log.wait_for_requests(depth, endpoint="wyoming", timeout=60)
        assert wait_for(lambda: two_slots.health()["queue_depth"] == 0)
        with two_slots.client() as client:
            response = client.post("/v1/audio/speech", json={**BODY, "input": "Still serving."})
        assert response.status_code == 200
    for line in lines:
        assert line["status"] == 499, line
        assert "stopped reading" in line["error"]
        assert line["segments_done"] < line["segments"]


def test_request_deadline_covers_wyoming_sending(custom_voice_dir: Path, request_log: RecordCollector) -> None:
    with (
        live_server(
            model_id=str(custom_voice_dir),
            preload_model=True,
            send_timeout=600,
            request_timeout=5,
            max_new_tokens=32,
            wyoming_port=free_port(),
            wyoming_host="127.0.0.1",
        ) as server,
        stalled_wyoming(server, 1),
    ):
        [line] = request_log.wait_for_requests(1, endpoint="wyoming", timeout=90)
        assert wait_for(lambda: server.health()["queue_depth"] == 0)
    # The blocked write hit REQUEST_TIMEOUT (or the engine's wait did), long before the
    # 600 s send timeout.
    assert line["status"] == 504, line
    assert line["segments_done"] < line["segments"]
