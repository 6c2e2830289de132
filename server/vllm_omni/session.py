"""One connection of vLLM-Omni's speech socket.

A reader task parses text frames into the inbox; the server task answers them in order.
`session.config` is validated and its voice resolved at once (an inline reference becomes
a clone prompt once, for every sentence after it); `input.text` feeds the utterance's text
stream, which speaks each sentence (one interactive engine job) as soon as it is complete;
`input.done` speaks the rest and answers `session.done`, and the connection stays open for
the next utterance. Pause tags and pronunciations (the session's own, over the server's
file) are read in each sentence once it is complete, so one cut across deltas is read as in
the whole text. A sentence that fails answers `error` and `audio.done` with
`"error": true`, and the utterance goes on with its next sentence, as vLLM-Omni does. When
the client goes, the server task is cancelled and the sentence being spoken stops.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect

from server.audio.dsp import to_pcm16_bytes
from server.audio.encoders import encode_whole_at
from server.audio.formats import FormatSpec
from server.audio.resample import StreamResampler
from server.engine.slots.aligner import HOW_TO_ENABLE
from server.errors import APIError, invalid_request, log_refusal
from server.speech.ending import ClientGone, log_stalled, run_connection
from server.speech.omni import OmniVoices
from server.speech.planning import SpeechPlan, options_of, pronunciations_of, resolve_format, resolve_language
from server.speech.speaking import speak_plan
from server.speech.synthesis import SpeechService
from server.speech.text_stream import TextStream
from server.speech.timestamps import SegmentWords, WordTimer, WordTiming
from server.speech.voice_resolution import ResolvedVoice
from server.vllm_omni.protocol import ClientMessage, InputText, SessionConfig, error_event, parse_message
from server.web.inbox import READ_AHEAD_BODIES, READ_AHEAD_MESSAGES, read_ahead
from server.web.inbox import Inbox as MessageInbox

log = logging.getLogger("qwen3-tts")

ENDPOINT = "/v1/audio/speech/stream"
LOG_ENDPOINT = "/v1/audio/speech/stream (vllm-omni websocket)"
MAX_FRAME_BYTES = 64 * 1024
# As vLLM-Omni: a connection must configure itself within this many seconds.
CONFIG_TIMEOUT = 10.0
ALIGNMENT_KEYS = ("words", "word_start_times_seconds", "word_end_times_seconds")

Inbox = MessageInbox[ClientMessage | APIError]


@dataclass(frozen=True)
class _Session:
    config: SessionConfig
    voice: ResolvedVoice
    fmt: FormatSpec


class OmniConnection:
    def __init__(
        self,
        websocket: WebSocket,
        service: SpeechService,
        voices: OmniVoices,
        connection_id: str,
        max_message_bytes: int,
        timing: WordTiming | None = None,
    ) -> None:
        self.websocket = websocket
        self.timing = timing or WordTiming(None)
        self.service = service
        self.voices = voices
        self.connection_id = connection_id
        self.max_message_bytes = max_message_bytes  # MAX_JSON_BYTES, as for HTTP bodies

    async def run(self) -> None:
        inbox: Inbox = MessageInbox(READ_AHEAD_MESSAGES, READ_AHEAD_BODIES * self.max_message_bytes)
        # The session ends with the client's leaving; a stalled client's connection was dropped.
        await run_connection(self._read(inbox), self._serve(inbox), log_stalled(self.connection_id, LOG_ENDPOINT))

    async def _read(self, inbox: Inbox) -> None:
        """Every message as it arrives, never waiting for the session, so the keepalive's
        pongs are read whatever the backlog (server/web/inbox.py)."""
        await read_ahead(self.websocket, inbox, parse_message, self.max_message_bytes, self.connection_id, LOG_ENDPOINT)

    async def send_json(self, event: dict[str, Any]) -> None:
        await self._send(self.websocket.send_json(event))

    async def send_bytes(self, data: bytes) -> None:
        for offset in range(0, len(data), MAX_FRAME_BYTES):
            await self._send(self.websocket.send_bytes(data[offset : offset + MAX_FRAME_BYTES]))

    async def _send(self, sending: Any) -> None:
        """One send; ClientGone when the client has gone. Each is bounded by the app's send
        guard (SEND_TIMEOUT, and the deadline of the sentence being spoken), which raises
        ClientStalled and aborts the connection of a client that stopped reading."""
        try:
            await sending
        except (WebSocketDisconnect, RuntimeError) as exc:
            raise ClientGone() from exc

    async def _serve(self, inbox: Inbox) -> None:
        session: _Session | None = None
        stream: TextStream | None = None
        utterance = 0
        try:
            while True:
                try:
                    message = await asyncio.wait_for(inbox.get(), None if session else CONFIG_TIMEOUT)
                except TimeoutError:
                    await self.send_json(error_event(invalid_request("timeout waiting for session.config")))
                    await self.websocket.close()
                    return
                try:
                    if isinstance(message, APIError):
                        raise message
                    if message == "session.close":
                        await self.websocket.close()
                        return
                    if isinstance(message, SessionConfig):
                        if stream is not None:
                            raise invalid_request(
                                "session.config cannot change an utterance in progress: send input.done first",
                                param="type",
                            )
                        session = await self._configure(message)
                        continue
                    if session is None:
                        raise invalid_request("send session.config first", param="type")
                    if isinstance(message, InputText):
                        if stream is None:
                            stream = self._open(session, utterance)
                        await stream.feed(message.text)
                        continue
                    # input.done: the rest is spoken, then session.done; the connection stays open.
                    spoken = 0
                    if stream is not None:
                        await stream.finish()
                        spoken = stream.spoken
                        stream = None
                    await self.send_json(
                        {"type": "session.done", "utterance_index": utterance, "total_sentences": spoken}
                    )
                    utterance += 1
                except APIError as exc:
                    log_refusal(exc, self.connection_id, LOG_ENDPOINT)
                    await self.send_json(error_event(exc))
        finally:
            if stream is not None:
                await stream.cancel()  # the client left mid-utterance: stop the sentence being spoken

    async def _configure(self, config: SessionConfig) -> _Session:
        """Everything about the session checked before any text: model, format, language,
        token cap, pronunciations' languages, and the voice (an inline reference's prompt
        computed now)."""
        if config.model is not None:
            self.service.models.require(config.model)
        fmt = resolve_format(config.response_format)
        if config.stream_audio and fmt.name != "pcm":
            raise invalid_request("stream_audio sends raw PCM: set response_format to pcm", param="stream_audio")
        resolve_language(config.language, "")
        self.service.token_cap_for(config.max_new_tokens)
        pronunciations_of(config)
        voice = await self.voices.resolve(config, config.voice)
        return _Session(config, voice, fmt)

    def _open(self, session: _Session, utterance: int) -> TextStream:
        async def speak_sentence(sentence: str, index: int) -> bool:
            await self._speak(session, sentence, utterance, index)
            return True  # a failed sentence was answered; the utterance goes on

        return TextStream(speak_sentence)

    async def _speak(self, session: _Session, sentence: str, utterance: int, index: int) -> None:
        config = session.config
        request_id = f"{self.connection_id}-{utterance + 1}.{index}"
        start: dict[str, Any] = {
            "type": "audio.start",
            "utterance_index": utterance,
            "sentence_index": index,
            "sentence_text": sentence,
            "format": session.fmt.name,
            "sample_rate": config.sample_rate,
            "channels": 1,
        }
        done: dict[str, Any] = {"type": "audio.done", "utterance_index": utterance, "sentence_index": index}
        total = 0
        started = False

        async def begin() -> None:
            nonlocal started
            if not started:
                started = True
                await self.send_json(start)

        gathered: list[np.ndarray] = []
        resampler = StreamResampler(config.sample_rate)

        async def send_pcm(pcm: np.ndarray) -> None:
            nonlocal total
            if pcm.size:
                await begin()
                data = to_pcm16_bytes(pcm)
                total += len(data)
                await self.send_bytes(data)

        async def deliver(pcm: np.ndarray) -> None:
            if not config.stream_audio:
                gathered.append(pcm)  # one encoded file for the sentence, once it is complete
                return
            await send_pcm(resampler.process(pcm))

        failed = False
        timer: WordTimer | None = None
        try:
            plan: SpeechPlan = self.service.plan(
                options_of(config, sentence), session.voice, session.fmt, LOG_ENDPOINT, interactive=True
            )
            if config.wants_word_timestamps and self.timing.enabled:
                timer = self.timing.timer(plan)
            await speak_plan(self.service, plan, request_id, deliver, timer.segment_done if timer else None)
            if config.stream_audio:
                await send_pcm(resampler.finish())  # the resampler's look-ahead
            else:
                pcm = np.concatenate(gathered) if gathered else np.zeros(0, dtype=np.float32)
                data = await asyncio.to_thread(encode_whole_at, pcm, session.fmt.name, config.sample_rate)
                await begin()
                total = len(data)
                await self.send_bytes(data)
        except APIError as exc:
            failed = True
            await begin()  # audio.start and audio.done stay paired
            await self.send_json({**error_event(exc), "partial_audio": total > 0})
        except BaseException:  # the client left: nobody reads the words
            if timer is not None:
                timer.cancel()
            raise
        await begin()
        done.update(total_bytes=total, error=failed)
        if config.wants_word_timestamps:
            done["timestamp_info"] = await self._timestamp_info(timer, failed)
        await self.send_json(done)

    async def _timestamp_info(self, timer: WordTimer | None, failed: bool) -> dict[str, Any]:
        """The sentence's words as vLLM-Omni's audio.done carries them ("sync": the words come
        with the sentence's audio.done), in seconds from the sentence's start. Without the
        aligner, or when it could not time them, the lists are empty and `reason` says why."""
        segments: list[SegmentWords] = []
        if timer is not None:
            try:
                segments = [] if failed else await timer.remaining()
            finally:
                timer.cancel()
        words = [word for segment in segments for word in segment.words]
        alignment: dict[str, list[Any]] = {
            "words": [word.word for word in words],
            "word_start_times_seconds": [round(word.start, 3) for word in words],
            "word_end_times_seconds": [round(word.end, 3) for word in words],
        }
        info: dict[str, Any] = {"word_alignment": alignment}
        reason = (
            HOW_TO_ENABLE
            if not self.timing.enabled
            else "the sentence failed"
            if failed
            else "; ".join(segment.error for segment in segments if segment.error)
        )
        if reason:
            info["reason"] = reason
        return info
