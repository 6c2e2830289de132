"""Talking to the server's Wyoming port with the `wyoming` package's own async client."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.tts import SynthesizeStopped

from tests.support.engine_control import DEADLINE_SECONDS
from tests.support.live_server import LiveServer, free_port, live_server

T = TypeVar("T")


def wyoming_live_server(checkpoint: Path, **overrides: Any) -> AbstractContextManager[LiveServer]:
    """A live server with its Wyoming port on 127.0.0.1 and a free port, on `checkpoint`, with
    no idle unload and short answers; `overrides` are further settings."""
    settings: dict[str, Any] = {"idle_timeout": 0, "max_new_tokens": 16, **overrides}
    return live_server(model_id=str(checkpoint), wyoming_port=free_port(), wyoming_host="127.0.0.1", **settings)


def client_for(server: LiveServer) -> AsyncTcpClient:
    port = server.app.state.wyoming.port
    return AsyncTcpClient("127.0.0.1", port, connect_timeout=30, read_timeout=DEADLINE_SECONDS)


def run(coro_fn: Callable[[AsyncTcpClient], Awaitable[T]], server: LiveServer) -> T:
    """Run `coro_fn(client)` on a fresh event loop, connected for its duration."""

    async def main() -> T:
        async with client_for(server) as client:
            return await coro_fn(client)

    return asyncio.run(main())


@dataclass
class Spoken:
    """One audio stream as the client received it: audio-start .. audio-stop."""

    start: AudioStart
    chunks: list[AudioChunk] = field(default_factory=list)
    stop: AudioStop | None = None

    @property
    def audio(self) -> bytes:
        return b"".join(chunk.audio for chunk in self.chunks)


async def read(client: AsyncTcpClient) -> Event:
    event = await client.read_event()
    assert event is not None, "the server closed the connection"
    return event


async def read_audio(client: AsyncTcpClient, first: Event | None = None) -> Spoken:
    """One audio stream; `first` is its audio-start when already read."""
    event = first or await read(client)
    if Error.is_type(event.type):
        raise AssertionError(f"error instead of audio: {Error.from_event(event)}")
    assert AudioStart.is_type(event.type), event.type
    spoken = Spoken(AudioStart.from_event(event))
    while True:
        event = await read(client)
        if AudioChunk.is_type(event.type):
            spoken.chunks.append(AudioChunk.from_event(event))
        elif AudioStop.is_type(event.type):
            spoken.stop = AudioStop.from_event(event)
            return spoken
        else:
            raise AssertionError(f"unexpected {event.type} inside an audio stream")


async def read_until_stopped(client: AsyncTcpClient) -> list[Spoken]:
    """The audio streams of a streaming synthesis, up to synthesize-stopped."""
    streams = []
    while not SynthesizeStopped.is_type((event := await read(client)).type):
        streams.append(await read_audio(client, event))
    return streams


# Raw sockets, for what the package's client cannot send: broken framing, events over the
# limit, readers that never read.


def narrow_send_buffer(server: LiveServer, size: int = 4096) -> None:
    """Give the connections the Wyoming port accepts from now on a small send buffer (as
    `live_server(send_buffer=...)` does for HTTP), so a reader that stops fills it at once."""
    for listening in server.app.state.wyoming.sockets:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


def raw_connect(port: int, receive_buffer: int | None = None, timeout: float = 60.0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:  # before connecting, so the window is small from the start
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(timeout)
    sock.connect(("127.0.0.1", port))
    return sock


def encode_event(event: Event) -> bytes:
    """The event in Wyoming's framing, as the package writes it."""
    header: dict[str, object] = {"type": event.type, "version": "1.0.0"}
    data = json.dumps(event.data).encode() if event.data else b""
    if data:
        header["data_length"] = len(data)
    if event.payload:
        header["payload_length"] = len(event.payload)
    return json.dumps(header).encode() + b"\n" + data + (event.payload or b"")


class RawReader:
    """Wyoming events read off a raw socket; None when the server has closed it."""

    def __init__(self, sock: socket.socket) -> None:
        self.file = sock.makefile("rb")

    def read(self) -> Event | None:
        line = self.file.readline()
        if not line:
            return None
        header = json.loads(line)
        data = dict(header.get("data") or {})
        if header.get("data_length"):
            data.update(json.loads(self.file.read(header["data_length"])))
        payload = self.file.read(header["payload_length"]) if header.get("payload_length") else None
        return Event(type=header["type"], data=data, payload=payload)

    def read_until(self, event_type: str) -> list[Event]:
        """Events up to and including the first of `event_type` (or up to the close)."""
        events = []
        while (event := self.read()) is not None:
            events.append(event)
            if event.type == event_type:
                break
        return events
