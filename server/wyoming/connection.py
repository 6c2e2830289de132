"""One Wyoming connection: events are read as they come and answered in order.

A reader task parses events into the inbox; the server task answers them: `describe` with
`info`; `synthesize` with `audio-start`, the audio as the engine produces it, `audio-stop`;
`synthesize-start` opens a text stream whose sentences are each spoken (one interactive
engine job, one `audio-start`/`audio-chunk`/`audio-stop` each) as soon as they are complete,
`synthesize-stop` speaks the rest and answers `synthesize-stopped`. The `synthesize` a
streaming client sends inside its stream (for servers that do not stream) is ignored. A
request that cannot be served answers `error` and the connection stays usable; when the
client goes, the reader ends, the server task is cancelled and the running job stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from pydantic import ValidationError
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.info import Describe
from wyoming.ping import Ping, Pong
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
    SynthesizeTextFormat,
    SynthesizeVoice,
)

from server.audio.dsp import to_pcm16_bytes
from server.engine.jobs import SAMPLE_RATE
from server.errors import APIError, invalid_request, log_refusal, validation_error
from server.speech.catalog import VoiceCatalog
from server.speech.library import VoiceLibrary
from server.speech.planning import SpeechOptions, SpeechPlan, resolve_format, resolve_language
from server.speech.requests import MAX_INPUT_CHARS, VoiceFields
from server.speech.sending import ClientStalled, bounded_send
from server.speech.speaking import ListenerGone, speak_plan
from server.speech.synthesis import SpeechService
from server.speech.text_stream import TextStream
from server.speech.voice_resolution import ResolvedVoice, VoiceResolver
from server.wyoming.framing import FramingError, read_event
from server.wyoming.info import DEFAULT_VOICE, describe

log = logging.getLogger("qwen3-tts")

ENDPOINT = "wyoming"
STREAM_ENDPOINT = "wyoming-stream"
SAMPLE_WIDTH = 2
CHANNELS = 1
# Events read ahead while one is served; beyond that the reader waits (and TCP pushes back).
INBOX_LIMIT = 64


def error_event(error: APIError) -> Event:
    """Wyoming's `error`: the HTTP error's message, its code (or its type when it has none)."""
    return Error(text=error.message, code=error.code or error.type).event()


E = TypeVar("E", Synthesize, SynthesizeStart, SynthesizeChunk)


def _parsed(from_event: Callable[[Event], E], event: Event) -> E:
    """The event's fields, or a 400 saying what is missing or of the wrong type."""
    try:
        parsed = from_event(event)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise invalid_request(f"malformed {event.type} event: {exc!r}") from exc
    text = getattr(parsed, "text", "")
    if not isinstance(text, str):
        raise invalid_request(f"{event.type} text must be a string", param="text")
    return parsed


@dataclass(frozen=True)
class _Voice:
    voice: ResolvedVoice
    language: str | None


@dataclass
class _Stream:
    """An open streaming synthesis; `text` is None when its start was refused (its chunks
    are dropped and its stop still answered, so the client is not left waiting)."""

    request_id: str
    text: TextStream | None


@dataclass(frozen=True)
class ConnectionContext:
    """What every connection of one server shares."""

    service: SpeechService
    voices: VoiceResolver
    library: VoiceLibrary | None  # saved voices listed by describe; None when not offered
    send_timeout: float
    version: str
    catalog: VoiceCatalog = field(default_factory=VoiceCatalog)  # the speakers and mapped names
    max_event_bytes: int = 256 * 1024  # MAX_JSON_BYTES, as for HTTP bodies and WebSocket messages


class WyomingConnection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        context: ConnectionContext,
        connection_id: str,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.context = context
        self.service = context.service
        self.connection_id = connection_id
        self._ids = (f"{connection_id}-{n}" for n in itertools.count(1))
        self._write_lock = asyncio.Lock()

    async def run(self) -> None:
        inbox: asyncio.Queue[Event | APIError] = asyncio.Queue(INBOX_LIMIT)
        tasks = [asyncio.create_task(self._read(inbox)), asyncio.create_task(self._serve(inbox))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, ListenerGone, ClientStalled, ConnectionError):
                    await task

    async def _read(self, inbox: asyncio.Queue[Event | APIError]) -> None:
        try:
            while (event := await read_event(self.reader, self.context.max_event_bytes)) is not None:
                await inbox.put(event)  # an APIError is answered in its turn, the connection going on
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except FramingError as exc:
            # Not Wyoming's framing, or an event over the bound (refused from its header, its
            # body unread): nothing after it can be trusted, so `error`, and the connection ends.
            log.info(
                "wyoming connection closed",
                extra={"request_id": self.connection_id, "status": exc.error.status, "error": exc.error.message},
            )
            with contextlib.suppress(ListenerGone, ClientStalled):
                await self.send(error_event(exc.error))

    async def send(self, event: Event) -> None:
        """Write one event; ListenerGone when the client has left, ClientStalled when it
        stopped reading (past SEND_TIMEOUT, or the deadline of the request being spoken)."""
        async with self._write_lock:
            try:
                await bounded_send(async_write_event(event, self.writer), self.context.send_timeout)
            except ConnectionError as exc:
                raise ListenerGone() from exc

    async def _serve(self, inbox: asyncio.Queue[Event | APIError]) -> None:
        stream: _Stream | None = None
        try:
            while True:
                event = await inbox.get()
                try:
                    if isinstance(event, APIError):
                        raise event
                    stream = await self._answer(event, stream)
                except APIError as exc:
                    await self._refuse(exc)
        finally:
            if stream is not None and stream.text is not None:
                await stream.text.cancel()  # the client left mid-stream: stop the sentence being spoken

    async def _refuse(self, error: APIError) -> None:
        """Log a request refused before synthesis (like refused HTTP requests), answer `error`."""
        log_refusal(error, self.connection_id, ENDPOINT)
        await self.send(error_event(error))

    async def _answer(self, event: Event, stream: _Stream | None) -> _Stream | None:
        """Answer one event; returns the streaming synthesis open afterwards."""
        if Describe.is_type(event.type):
            info = await describe(self.context.library, self.context.version, self.context.catalog)
            await self.send(info.event())
        elif Ping.is_type(event.type):
            await self.send(Pong(text=Ping.from_event(event).text).event())
        elif SynthesizeStart.is_type(event.type):
            if stream is not None:
                raise invalid_request("a streaming synthesis is already open: send synthesize-stop first")
            return await self._start(_parsed(SynthesizeStart.from_event, event))
        elif SynthesizeChunk.is_type(event.type):
            if stream is None:
                raise invalid_request("no streaming synthesis is open: send synthesize-start first")
            text = _parsed(SynthesizeChunk.from_event, event).text
            if stream.text is not None and not stream.text.failed:
                await stream.text.feed(text)
        elif SynthesizeStop.is_type(event.type):
            if stream is None:
                raise invalid_request("no streaming synthesis is open: send synthesize-start first")
            if stream.text is not None:
                await stream.text.finish()
            await self.send(SynthesizeStopped().event())
            return None
        elif Synthesize.is_type(event.type) and stream is None:
            # (Inside a stream it is the whole text again, for servers that do not stream.)
            await self._synthesize(_parsed(Synthesize.from_event, event))
        # Anything else (select-program, events of other domains) is dropped, as Wyoming
        # servers are expected to do.
        return stream

    async def _voice(self, requested: SynthesizeVoice | None, text_format: str | None) -> _Voice:
        if text_format not in (None, SynthesizeTextFormat.TEXT, SynthesizeTextFormat.TEXT.value):
            raise invalid_request(f"text_format {text_format!s} is not supported; send plain text", param="text_format")
        if requested is not None and requested.speaker is not None:
            raise invalid_request("these voices have no speakers: name the voice alone", param="voice.speaker")
        default = self.context.catalog.speakers[0] if self.context.catalog.speakers else DEFAULT_VOICE
        name = requested.name if requested is not None and requested.name else default
        language = requested.language if requested is not None else None
        try:
            fields = VoiceFields.model_validate({"voice": name, "language": language})
        except ValidationError as exc:
            raise validation_error(exc.errors()) from exc
        resolve_language(fields.language, "")  # a bad language is refused before any text
        return _Voice(await self.context.voices.resolve(fields.voice_name), fields.language)

    def _plan(self, voice: _Voice, text: str, endpoint: str) -> SpeechPlan:
        options = SpeechOptions(input=text, response_format="pcm", language=voice.language)
        return self.service.plan(options, voice.voice, resolve_format("pcm"), endpoint, interactive=True)

    async def _speak(self, voice: _Voice, text: str, endpoint: str, request_id: str) -> None:
        """audio-start, the audio chunk by chunk, audio-stop; APIError when synthesis fails."""
        plan = self._plan(voice, text, endpoint)
        start = AudioStart(rate=SAMPLE_RATE, width=SAMPLE_WIDTH, channels=CHANNELS).event()
        sent: int | None = None  # samples sent; None until audio-start has gone

        async def deliver(pcm: np.ndarray) -> None:
            # audio-start goes with the first audio, so a job the queue refuses answers
            # `error` alone, not a started stream that never stops.
            nonlocal sent
            if sent is None:
                await self.send(start)
                sent = 0
            chunk = AudioChunk(
                rate=SAMPLE_RATE,
                width=SAMPLE_WIDTH,
                channels=CHANNELS,
                audio=to_pcm16_bytes(pcm),
                timestamp=sent * 1000 // SAMPLE_RATE,
            )
            await self.send(chunk.event())
            sent += int(pcm.shape[0])

        await speak_plan(self.service, plan, request_id, deliver)
        if sent is None:
            await self.send(start)
            sent = 0
        await self.send(AudioStop(timestamp=sent * 1000 // SAMPLE_RATE).event())

    async def _synthesize(self, request: Synthesize) -> None:
        if not request.text.strip():
            raise invalid_request("text must contain something to speak", param="text")
        if len(request.text) > MAX_INPUT_CHARS:
            raise invalid_request(f"text must be at most {MAX_INPUT_CHARS} characters", param="text")
        voice = await self._voice(request.voice, request.text_format)
        await self._speak(voice, request.text, ENDPOINT, next(self._ids))

    async def _start(self, request: SynthesizeStart) -> _Stream:
        request_id = next(self._ids)
        try:
            voice = await self._voice(request.voice, request.text_format)
        except APIError as exc:
            # Refused, but still open: its chunks are dropped and its stop answered.
            await self._refuse(exc)
            return _Stream(request_id, None)

        async def speak_sentence(sentence: str, index: int) -> bool:
            try:
                await self._speak(voice, sentence, STREAM_ENDPOINT, f"{request_id}.{index}")
            except APIError as exc:
                await self.send(error_event(exc))
                return False
            return True

        return _Stream(request_id, TextStream(speak_sentence))
