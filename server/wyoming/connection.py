"""One Wyoming connection: events are read as they come and answered in order.

A reader task parses events into the inbox; the server task answers them: `describe` with
`info`; `synthesize` with `audio-start`, the audio as the engine produces it, `audio-stop`;
`synthesize-start` opens a text stream whose sentences are each spoken (one interactive
engine job, one `audio-start`/`audio-chunk`/`audio-stop` each) as soon as they are complete,
`synthesize-stop` speaks the rest and answers `synthesize-stopped`. The `synthesize` a
streaming client sends inside its stream (for servers that do not stream) is ignored. A
request that cannot be served answers `error` and the connection stays usable; when the
client goes, the reader ends, the server task is cancelled and the running job stops.

A connection is answered `error` and closed when an event it began is not complete within
WYOMING_EVENT_TIMEOUT, and when it sends nothing for WYOMING_IDLE_TIMEOUT while nothing of
it is being answered (an event waiting in the queue or being spoken is not idleness). A
client that stops reading loses its job after SEND_TIMEOUT and its connection is aborted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from dataclasses import dataclass, field

import numpy as np
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe
from wyoming.ping import Ping, Pong
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped

from server.audio.dsp import to_pcm16_bytes
from server.engine.jobs import SAMPLE_RATE
from server.errors import APIError, invalid_request, log_refusal
from server.speech.catalog import VoiceCatalog
from server.speech.ending import ClientGone, run_connection
from server.speech.library import VoiceLibrary
from server.speech.planning import SpeechOptions, SpeechPlan, resolve_format, resolve_language
from server.speech.sending import ClientStalled, abort_connection, bounded_send
from server.speech.speaking import speak_plan
from server.speech.synthesis import SpeechService
from server.speech.text_stream import TextStream
from server.speech.voice_resolution import ResolvedVoice, VoiceResolver
from server.wyoming import requests
from server.wyoming.framing import FramingError, UnencodableEvent, encode_event, read_event
from server.wyoming.info import DEFAULT_VOICE, describe
from server.wyoming.requests import VoiceRequest

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


def unencodable_answer(error: UnencodableEvent) -> APIError:
    """The `error` that stands for an answer that could not be encoded."""
    return APIError(500, f"the answer could not be sent: {error}", "server_error", None, "internal_error")


class IdleConnection(Exception):
    """The client sent nothing for WYOMING_IDLE_TIMEOUT while nothing was being answered."""


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
    event_timeout: float = 10.0  # WYOMING_EVENT_TIMEOUT: an event begun must be complete by then
    idle_timeout: float = 60.0  # WYOMING_IDLE_TIMEOUT: silence allowed while nothing is answered


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
        # Idleness: events read and not yet answered, sentences of a stream being spoken, and
        # when the connection last read or wrote anything (event-loop time).
        self._unanswered = 0
        self._speaking = 0
        self._last_activity = asyncio.get_running_loop().time()

    async def run(self) -> None:
        inbox: asyncio.Queue[Event | APIError] = asyncio.Queue(INBOX_LIMIT)
        # A client that stopped reading was aborted by `send`; a reset is the client leaving.
        await run_connection(self._read(inbox), self._serve(inbox), quiet=(ConnectionError,))

    async def _read(self, inbox: asyncio.Queue[Event | APIError]) -> None:
        context = self.context
        try:
            while (first := await self._first_byte()) is not None:
                event = await read_event(self.reader, first, context.max_event_bytes, context.event_timeout)
                self._unanswered += 1
                self._last_activity = asyncio.get_running_loop().time()
                await inbox.put(event)  # an APIError is answered in its turn, the connection going on
        except ConnectionError:
            return
        except FramingError as exc:
            # Not Wyoming's framing, an event over the bound (refused from its header, its body
            # unread) or one not finished in time: nothing after it can be trusted, so `error`,
            # and the connection ends.
            await self.close_with(exc.error)
        except IdleConnection:
            message = (
                f"nothing was sent for {context.idle_timeout:g} s (WYOMING_IDLE_TIMEOUT): the connection is closed"
            )
            await self.close_with(APIError(408, message, "invalid_request_error", None, "idle_timeout"))

    async def _first_byte(self) -> bytes | None:
        """The first byte of the next event, None when the client has gone; IdleConnection
        once the connection has been idle for WYOMING_IDLE_TIMEOUT."""
        loop = asyncio.get_running_loop()
        while True:
            busy = self._unanswered or self._speaking
            wait = self.context.idle_timeout if busy else self._last_activity + self.context.idle_timeout - loop.time()
            try:
                async with asyncio.timeout(max(wait, 0.0)):
                    return await self.reader.readexactly(1)
            except asyncio.IncompleteReadError:
                return None
            except TimeoutError:
                idle_for = loop.time() - self._last_activity
                if not (self._unanswered or self._speaking) and idle_for >= self.context.idle_timeout:
                    raise IdleConnection() from None

    async def close_with(self, error: APIError) -> None:
        """Answer `error` (logged) as the connection's last event."""
        log.info(
            "wyoming connection closed",
            extra={
                "request_id": self.connection_id,
                "status": error.status,
                "code": error.code,
                "error": error.message,
            },
        )
        with contextlib.suppress(ClientGone, ClientStalled):
            await self.send(error_event(error))

    async def send(self, event: Event) -> None:
        """Write one event; ClientGone when the client has left, ClientStalled when it
        stopped reading (past SEND_TIMEOUT, or the deadline of the request being spoken),
        the connection then aborted. An event that cannot be encoded is answered by an
        `error` instead (nothing of it was written)."""
        try:
            data = encode_event(event)
        except UnencodableEvent as exc:
            log.error("wyoming answer not encodable", extra={"request_id": self.connection_id, "error": str(exc)})
            data = encode_event(error_event(unencodable_answer(exc)))
        async with self._write_lock:
            try:
                self.writer.write(data)
                await bounded_send(self.writer.drain(), self.context.send_timeout)
            except ConnectionError as exc:
                raise ClientGone() from exc
            except ClientStalled:
                abort_connection(self.writer.transport)  # its unsent bytes would hold the socket open
                raise
            self._last_activity = asyncio.get_running_loop().time()

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
                    self._unanswered -= 1
                    self._last_activity = asyncio.get_running_loop().time()
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
            await self.send(Pong(text=requests.ping_text(event)).event())
        elif SynthesizeStart.is_type(event.type):
            if stream is not None:
                raise invalid_request("a streaming synthesis is already open: send synthesize-stop first")
            return await self._start(event)
        elif SynthesizeChunk.is_type(event.type):
            if stream is None:
                raise invalid_request("no streaming synthesis is open: send synthesize-start first")
            text = requests.chunk_text(event)
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
            text, voice = requests.synthesize(event)
            await self._speak(await self._voice(voice), text, ENDPOINT, next(self._ids))
        # Anything else (select-program, events of other domains) is dropped, as Wyoming
        # servers are expected to do.
        return stream

    async def _voice(self, requested: VoiceRequest) -> _Voice:
        default = self.context.catalog.speakers[0] if self.context.catalog.speakers else DEFAULT_VOICE
        fields = requested.fields(default)
        resolve_language(fields.language, "")  # a bad language is refused before any text
        return _Voice(await self.context.voices.resolve(fields.voice_name), fields.language)

    async def _plan(self, voice: _Voice, text: str, endpoint: str) -> SpeechPlan:
        options = SpeechOptions(input=text, response_format="pcm", language=voice.language)
        voices = await self.service.script_voices(text)  # an SSML document's <voice> names
        return self.service.plan(options, voice.voice, resolve_format("pcm"), endpoint, interactive=True, voices=voices)

    async def _speak(self, voice: _Voice, text: str, endpoint: str, request_id: str) -> None:
        """audio-start, the audio chunk by chunk, audio-stop; APIError when synthesis fails."""
        plan = await self._plan(voice, text, endpoint)
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

    async def _start(self, event: Event) -> _Stream:
        request_id = next(self._ids)
        try:
            voice = await self._voice(requests.synthesize_start(event))
        except APIError as exc:
            # Refused, but still open: its chunks are dropped and its stop answered.
            await self._refuse(exc)
            return _Stream(request_id, None)

        async def speak_sentence(sentence: str, index: int) -> bool:
            self._speaking += 1  # the connection is not idle while its stream speaks
            try:
                await self._speak(voice, sentence, STREAM_ENDPOINT, f"{request_id}.{index}")
            except APIError as exc:
                await self.send(error_event(exc))
                return False
            finally:
                self._speaking -= 1
                self._last_activity = asyncio.get_running_loop().time()
            return True

        return _Stream(request_id, TextStream(speak_sentence))
