"""One WebSocket connection: messages are read as they come and served in order.

A reader task parses each text frame into the inbox; the server task answers the inbox in
order: an utterance is planned, spoken and answered with `done`; a text stream feeds deltas
through a sentence accumulator, and a voice task speaks each sentence as soon as it is
complete (one engine job per sentence, marked interactive) while more deltas arrive. When
the client goes, whichever task notices stops the other, and cancelling the server task
closes the running job's segment stream, which stops its work in the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from dataclasses import dataclass, field, replace

from starlette.websockets import WebSocket

from server.audio.formats import FormatSpec
from server.errors import APIError, invalid_request
from server.speech.synthesis import ResolvedVoice, SpeechService, draw_seed, options_of, resolve_language, segment_seed
from server.text.incremental import SentenceAccumulator
from server.websocket.protocol import (
    ClientMessage,
    StreamFields,
    TextDelta,
    TextFlush,
    TextStart,
    Utterance,
    error_event,
    parse_message,
)
from server.websocket.speaker import AudioOut, ClientGone, Speaker

log = logging.getLogger("qwen3-tts")

ENDPOINT = "/v1/audio/speech/ws"
# Messages read ahead while one is served; beyond that the reader waits (and TCP pushes back).
INBOX_LIMIT = 64
# Complete sentences waiting for the voice of a text stream; beyond that deltas wait.
SENTENCES_AHEAD = 8

Inbox = asyncio.Queue[ClientMessage | APIError]


@dataclass
class _Voice:
    """A validated request's voice and output, ready to plan text with."""

    fields: StreamFields
    voice: ResolvedVoice
    fmt: FormatSpec


@dataclass
class _TextStream:
    """An open text stream: the sentences ready to speak and the task speaking them."""

    voice: _Voice
    request_id: str
    seed: int  # the stream's seed (the client's or drawn); sentence i is generated with seed + i
    sentences: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(SENTENCES_AHEAD))
    accumulator: SentenceAccumulator = field(default_factory=SentenceAccumulator)
    task: asyncio.Task[bool] | None = None

    def ended_in_failure(self) -> bool:
        return self.task is not None and self.task.done() and not self.task.cancelled() and not self.task.result()

    async def push(self, sentence: str | None) -> None:
        """Queue a sentence (None: the end) for the voice, unless the voice has stopped."""
        assert self.task is not None
        put = asyncio.create_task(self.sentences.put(sentence))
        done, _ = await asyncio.wait({put, self.task}, return_when=asyncio.FIRST_COMPLETED)
        if put not in done:
            put.cancel()


class Connection:
    def __init__(self, websocket: WebSocket, service: SpeechService, connection_id: str) -> None:
        self.websocket = websocket
        self.service = service
        self.speaker = Speaker(websocket, service)
        self.connection_id = connection_id
        self._ids = (f"{connection_id}-{n}" for n in itertools.count(1))

    async def run(self) -> None:
        inbox: Inbox = asyncio.Queue(INBOX_LIMIT)
        tasks = [asyncio.create_task(self._read(inbox)), asyncio.create_task(self._serve(inbox))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, ClientGone):
                    await task

    async def _read(self, inbox: Inbox) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None:
                await inbox.put(invalid_request("send JSON messages as text frames, not binary"))
                continue
            try:
                await inbox.put(parse_message(raw))
            except APIError as exc:
                await inbox.put(exc)

    async def _serve(self, inbox: Inbox) -> None:
        stream: _TextStream | None = None
        try:
            while True:
                message = await inbox.get()
                if stream is not None and stream.ended_in_failure():
                    stream = None  # its error event ended it
                try:
                    stream = await self._answer(message, stream)
                except APIError as exc:
                    self._log_refusal(exc)
                    await self.speaker.send_event(error_event(exc))
        finally:
            if stream is not None and stream.task is not None:
                stream.task.cancel()  # the client left mid-stream: stop the sentence being spoken
                with contextlib.suppress(asyncio.CancelledError, ClientGone):
                    await stream.task

    def _log_refusal(self, error: APIError) -> None:
        # Like refused HTTP requests: messages refused before synthesis get their own line.
        log.info(
            "request refused",
            extra={
                "request_id": self.connection_id,
                "endpoint": ENDPOINT,
                "status": error.status,
                "code": error.code,
                "param": error.param,
                "error": error.message,
            },
        )

    async def _answer(self, message: ClientMessage | APIError, stream: _TextStream | None) -> _TextStream | None:
        """Serve one message; returns the text stream that is open afterwards."""
        if isinstance(message, APIError):
            raise message
        if stream is not None:
            if isinstance(message, TextDelta):
                for sentence in stream.accumulator.feed(message.text):
                    await stream.push(sentence)
                return stream
            if isinstance(message, TextFlush):
                await self._finish_text(stream)
                return None
            raise invalid_request("a text stream is open: send delta or flush messages", param="type")
        if isinstance(message, Utterance):
            await self._speak_utterance(message)
            return None
        if isinstance(message, TextStart):
            return await self._start_text(message)
        raise invalid_request("no text stream is open: send a start message first", param="type")

    async def _prepare(self, fields: StreamFields) -> _Voice:
        voice, fmt = await self.service.prepare(fields)
        resolve_language(fields.language, "")  # a bad language is refused before any text
        self.service.token_cap_for(fields.max_new_tokens)
        return _Voice(fields, voice, fmt)

    async def _speak_utterance(self, message: Utterance) -> None:
        prepared = await self._prepare(message)
        request_id = next(self._ids)
        plan = self.service.plan(
            options_of(message, message.input), prepared.voice, prepared.fmt, ENDPOINT, interactive=True
        )
        out = AudioOut(prepared.fmt, message.sample_rate)
        if await self.speaker.speak(plan, out, request_id):
            await self.speaker.send_audio(await out.finish())
            await self.speaker.send_event({"event": "done", "id": request_id, "seed": plan.job.seed})

    async def _start_text(self, message: TextStart) -> _TextStream:
        seed = message.seed if message.seed is not None else draw_seed()
        stream = _TextStream(await self._prepare(message), next(self._ids), seed)
        stream.task = asyncio.create_task(self._voice_text(stream))
        return stream

    async def _finish_text(self, stream: _TextStream) -> None:
        for sentence in stream.accumulator.flush():
            await stream.push(sentence)
        await stream.push(None)
        assert stream.task is not None
        if await stream.task:
            await self.speaker.send_event({"event": "done", "id": stream.request_id, "seed": stream.seed})

    async def _voice_text(self, stream: _TextStream) -> bool:
        """Speak the stream's sentences in order as they become ready; False after a failure."""
        prepared = stream.voice
        out = AudioOut(prepared.fmt, prepared.fields.sample_rate)
        index = 0
        while (sentence := await stream.sentences.get()) is not None:
            try:
                options = replace(options_of(prepared.fields, sentence), seed=segment_seed(stream.seed, index))
                plan = self.service.plan(options, prepared.voice, prepared.fmt, ENDPOINT, interactive=True)
            except APIError as exc:
                await self.speaker.send_event(error_event(exc))
                return False
            await self.speaker.send_event({"event": "sentence", "index": index, "text": sentence})
            if not await self.speaker.speak(plan, out, f"{stream.request_id}.{index}"):
                return False
            index += 1
        await self.speaker.send_audio(await out.finish())
        return True
