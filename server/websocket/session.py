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
import itertools
import logging
from dataclasses import dataclass, field, replace
from typing import Any

from starlette.websockets import WebSocket

from server.audio.formats import FormatSpec
from server.engine.jobs import FinishReason, request_finish_reason
from server.errors import APIError, invalid_request, log_refusal
from server.speech.ending import log_stalled, run_connection
from server.speech.planning import SpeechPlan, draw_seed, options_of, resolve_language, segment_seed
from server.speech.synthesis import SpeechService
from server.speech.text_stream import TextStream
from server.speech.timestamps import WordTiming
from server.speech.voice_resolution import ResolvedVoice
from server.web.inbox import READ_AHEAD_BODIES, READ_AHEAD_MESSAGES, read_ahead
from server.web.inbox import Inbox as MessageInbox
from server.web.paths import SPEECH_WEBSOCKET as ENDPOINT
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
from server.websocket.speaker import AudioOut, Speaker
from server.websocket.words import WordsSender

log = logging.getLogger("qwen3-tts")

Inbox = MessageInbox[ClientMessage | APIError]


@dataclass
class _Voice:
    """A validated request's voice and output, ready to plan text with."""

    fields: StreamFields
    voice: ResolvedVoice
    fmt: FormatSpec


@dataclass
class _TextStream:
    """An open text stream: its voice, one continuous audio output for all its sentences,
    and the shared text stream service speaking each sentence once it is complete."""

    voice: _Voice
    request_id: str
    out: AudioOut
    seed: int  # the stream's seed (the client's or drawn); sentence i is generated with seed + i
    text: TextStream = field(init=False)
    words: WordsSender | None = None  # with timestamps, from its first sentence on
    finish_reasons: list[FinishReason] = field(default_factory=list)  # per sentence spoken


class Connection:
    def __init__(
        self,
        websocket: WebSocket,
        service: SpeechService,
        connection_id: str,
        max_message_bytes: int,
        timing: WordTiming | None = None,
    ) -> None:
        self.websocket = websocket
        self.timing = timing or WordTiming(None)
        self.max_message_bytes = max_message_bytes  # MAX_JSON_BYTES, as for HTTP bodies
        self.service = service
        self.speaker = Speaker(websocket, service)
        self.connection_id = connection_id
        self._ids = (f"{connection_id}-{n}" for n in itertools.count(1))
        self._server: asyncio.Task[None] | None = None  # the task answering the inbox

    async def run(self) -> None:
        inbox: Inbox = MessageInbox(READ_AHEAD_MESSAGES, READ_AHEAD_BODIES * self.max_message_bytes)
        self._server = asyncio.create_task(self._serve(inbox))
        # The session ends with the client's leaving; a stalled client's connection was dropped.
        await run_connection(self._read(inbox), self._server, log_stalled(self.connection_id, ENDPOINT))

    def _voice_ended(self, task: asyncio.Task[Any]) -> None:
        """A text stream's voice (or a words sender) that ends by an exception (the client gone
        or stalled) ends the session, even while it waits for the client's next message."""
        if not task.cancelled() and task.exception() is not None and self._server is not None:
            self._server.cancel()

    async def _read(self, inbox: Inbox) -> None:
        """Every message as it arrives, never waiting for the session (see inbox.py)."""
        await read_ahead(self.websocket, inbox, parse_message, self.max_message_bytes, self.connection_id, ENDPOINT)

    async def _serve(self, inbox: Inbox) -> None:
        stream: _TextStream | None = None
        try:
            while True:
                message = await inbox.get()
                if stream is not None and stream.text.failed:
                    await self._drop_words(stream)
                    stream = None  # its error event ended it
                try:
                    stream = await self._answer(message, stream)
                except APIError as exc:
                    log_refusal(exc, self.connection_id, ENDPOINT)
                    await self.speaker.send_event(error_event(exc))
        finally:
            if stream is not None:
                await stream.text.cancel()  # the client left mid-stream: stop the sentence being spoken
                await self._drop_words(stream)

    @staticmethod
    async def _drop_words(stream: _TextStream) -> None:
        if stream.words is not None:
            await stream.words.cancel()

    def _words_sender(self, plan: SpeechPlan) -> WordsSender:
        sender = WordsSender(self.speaker, self.timing.timer(plan))
        sender.add_done_callback(self._voice_ended)
        return sender

    async def _answer(self, message: ClientMessage | APIError, stream: _TextStream | None) -> _TextStream | None:
        """Serve one message; returns the text stream that is open afterwards."""
        if isinstance(message, APIError):
            raise message
        if stream is not None:
            if isinstance(message, TextDelta):
                await stream.text.feed(message.text)
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
        if fields.timestamps:
            self.timing.require()  # refused before any audio, with how to turn it on
        voice, fmt = await self.service.prepare(fields)
        resolve_language(fields.language, "")  # a bad language is refused before any text
        self.service.token_cap_for(fields.max_new_tokens)
        return _Voice(fields, voice, fmt)

    async def _speak_utterance(self, message: Utterance) -> None:
        prepared = await self._prepare(message)
        request_id = next(self._ids)
        voices = await self.service.script_voices(message.input)  # an SSML document's <voice> names
        plan = self.service.plan(
            options_of(message, message.input), prepared.voice, prepared.fmt, ENDPOINT, interactive=True, voices=voices
        )
        out = AudioOut(prepared.fmt, message.sample_rate)
        words = self._words_sender(plan) if message.timestamps else None
        try:
            reason = await self.speaker.speak(plan, out, request_id, words.timer if words is not None else None)
            if reason is not None:
                await self.speaker.send_audio(await out.finish())
                if words is not None:
                    await words.finish()  # every words event comes before done
                await self.speaker.send_event(
                    {"event": "done", "id": request_id, "finish_reason": reason.value, "seed": plan.job.seed}
                )
        finally:
            if words is not None:
                await words.cancel()

    async def _start_text(self, message: TextStart) -> _TextStream:
        prepared = await self._prepare(message)
        seed = message.seed if message.seed is not None else draw_seed()
        stream = _TextStream(prepared, next(self._ids), AudioOut(prepared.fmt, prepared.fields.sample_rate), seed)
        stream.text = TextStream(lambda sentence, index: self._speak_sentence(stream, sentence, index))
        stream.text.add_done_callback(self._voice_ended)
        return stream

    async def _finish_text(self, stream: _TextStream) -> None:
        if await stream.text.finish():
            await self.speaker.send_audio(await stream.out.finish())
            if stream.words is not None:
                await stream.words.finish()
            reasons = stream.finish_reasons
            await self.speaker.send_event(
                {
                    "event": "done",
                    "id": stream.request_id,
                    "finish_reason": request_finish_reason(reasons).value,
                    "sentences": [reason.value for reason in reasons],
                    "seed": stream.seed,
                }
            )

    async def _speak_sentence(self, stream: _TextStream, sentence: str, index: int) -> bool:
        """Speak one sentence of the stream; False (after an error event) when it failed."""
        prepared = stream.voice
        try:
            options = replace(options_of(prepared.fields, sentence), seed=segment_seed(stream.seed, index))
            plan = self.service.plan(options, prepared.voice, prepared.fmt, ENDPOINT, interactive=True)
        except APIError as exc:
            await self.speaker.send_event(error_event(exc))
            return False
        timer = None
        if prepared.fields.timestamps:
            if stream.words is None:
                stream.words = self._words_sender(plan)
            else:
                stream.words.timer.follow(plan)  # its times go on from the sentences before
            timer = stream.words.timer
        await self.speaker.send_event({"event": "sentence", "index": index, "text": sentence})
        reason = await self.speaker.speak(plan, stream.out, f"{stream.request_id}.{index}", timer)
        if reason is None:
            return False
        stream.finish_reasons.append(reason)
        return True
