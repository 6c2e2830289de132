"""Talking to the server's Wyoming port with the `wyoming` package's own async client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.tts import SynthesizeStopped

from tests.support.engine_control import DEADLINE_SECONDS
from tests.support.live_server import LiveServer

T = TypeVar("T")


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
