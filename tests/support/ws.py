"""A WebSocket client for the speech socket (the `websockets` package, sync API)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from websockets.sync.client import ClientConnection, connect

from tests.support.live_server import LiveServer

WS_PATH = "/v1/audio/speech/ws"
RECEIVE_TIMEOUT = 120.0  # generous: a busy machine is slow, and a missing answer must fail, not hang


@dataclass
class Answer:
    """What the server sent for one utterance or text stream, up to its done or error."""

    audio: bytes = b""
    frames: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def last(self) -> dict[str, Any]:
        return self.events[-1]


@contextmanager
def ws_connect(server: LiveServer, query: str = "", **kwargs: Any) -> Iterator[ClientConnection]:
    url = f"ws://127.0.0.1:{server.port}{WS_PATH}{query}"
    with connect(url, proxy=None, open_timeout=30, **kwargs) as socket:
        yield socket


def send(socket: ClientConnection, message: dict[str, Any]) -> None:
    socket.send(json.dumps(message))


def receive_until_end(socket: ClientConnection) -> Answer:
    """Audio and events until `done` or `error`."""
    answer = Answer()
    while True:
        message = socket.recv(timeout=RECEIVE_TIMEOUT)
        if isinstance(message, bytes):
            answer.audio += message
            answer.frames += 1
            continue
        event = json.loads(message)
        answer.events.append(event)
        if event["event"] in ("done", "error"):
            return answer


def receive_first_audio(socket: ClientConnection) -> list[dict[str, Any]]:
    """Wait for the first binary frame; the events that came before it."""
    events = []
    while isinstance(message := socket.recv(timeout=RECEIVE_TIMEOUT), str):
        events.append(json.loads(message))
    return events
