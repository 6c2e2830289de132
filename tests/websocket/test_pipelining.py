"""Clients that send work ahead of its answers: every message is read as it arrives, so
the WebSocket's pings and pongs are read too, however much is waiting to be spoken. The
server's keepalive is shortened here (WS_PING_INTERVAL, WS_PING_TIMEOUT): a server that
stopped reading would miss a pong within seconds and close the connection with 1011."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from server.web.inbox import READ_AHEAD_BODIES
from tests.support.engine_control import inference_held, wait_until
from tests.support.live_server import LiveServer, RecordCollector, live_server
from tests.support.ws import RECEIVE_TIMEOUT, send, ws_connect

COUNT = 200


@pytest.fixture(scope="module")
def keepalive_server(custom_voice_dir: Path) -> Iterator[LiveServer]:
    with live_server(
        model_id=str(custom_voice_dir),
        preload_model=True,
        idle_timeout=0,
        max_new_tokens=4,
        ws_ping_interval=0.5,
        ws_ping_timeout=2,
    ) as server:
        yield server


def test_pipelined_utterances_all_complete(keepalive_server: LiveServer, request_log: RecordCollector) -> None:
    with ws_connect(keepalive_server, additional_headers={"X-Request-ID": "pipe"}) as socket:
        for i in range(COUNT):
            send(socket, {"input": f"Hi {i}.", "voice": "Ryan", "max_new_tokens": 3})
        done = []
        while len(done) < COUNT:
            message = socket.recv(timeout=RECEIVE_TIMEOUT)
            if isinstance(message, str):
                event = json.loads(message)
                assert event["event"] == "done", event
                done.append(event["id"])
    assert done == [f"pipe-{i}" for i in range(1, COUNT + 1)]
    # The shortened keepalive really ran: the server pinged and read the pongs meanwhile.
    assert len(request_log.requests("/v1/audio/speech/ws")) >= COUNT


def test_a_text_stream_written_at_once_completes(keepalive_server: LiveServer) -> None:
    sentences = [f"Sentence {i} is here." for i in range(COUNT)]
    words = " ".join(sentences).split(" ")
    with ws_connect(keepalive_server) as socket:
        send(socket, {"type": "start", "voice": "Ryan", "max_new_tokens": 3})
        for word in words:  # an LLM's word deltas, written faster than they are spoken
            send(socket, {"type": "delta", "text": word + " "})
        send(socket, {"type": "flush"})
        spoken = []
        while True:
            message = socket.recv(timeout=RECEIVE_TIMEOUT)
            if isinstance(message, bytes):
                continue
            event = json.loads(message)
            if event["event"] != "sentence":
                break
            spoken.append(event["text"])
    assert event["event"] == "done", event
    assert spoken == sentences


def test_more_than_the_read_ahead_is_closed_with_1008(
    keepalive_server: LiveServer, request_log: RecordCollector
) -> None:
    padding = "x" * (keepalive_server.settings.max_json_bytes - 1024)
    with inference_held(keepalive_server), ws_connect(keepalive_server) as socket:
        send(socket, {"input": "Held in the engine.", "voice": "Ryan"})
        wait_until(lambda: keepalive_server.health()["queue_depth"] == 1)
        # Each message under MAX_JSON_BYTES, together more than the inbox holds (4 of them).
        with pytest.raises(ConnectionClosed):
            for _ in range(READ_AHEAD_BODIES + 1):
                send(socket, {"input": "Hi.", "voice": "Ryan", "padding": padding})
            socket.recv(timeout=RECEIVE_TIMEOUT)
    assert socket.close_code == 1008
    assert socket.close_reason is not None and "sent ahead" in socket.close_reason
    wait_until(lambda: keepalive_server.health()["queue_depth"] == 0)
