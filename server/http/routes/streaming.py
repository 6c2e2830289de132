"""Streamed speech: chunked audio in any format, OpenAI's SSE events, and the earlier
server's sentence-by-sentence SSE. All three forward the same chunk stream that a whole
response collects (the sentence stream gathers it per sentence).

The first chunk (a couple of codec frames) is awaited BEFORE the response starts, so
everything that can fail early (queue full, model load, bad speaker) still gets its HTTP
status and OpenAI error; once the 200 is sent, a failure can only be reported inside the
stream (an SSE error event, or an audio stream cut short). Each response is tracked, so the
request is logged once, after its last byte, with the status it really ended with.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import orjson
from fastapi.responses import Response, StreamingResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from server.audio.dsp import SAMPLE_RATE, to_pcm16_bytes
from server.audio.encoders import AudioEncoder, create_encoder
from server.audio.resample import StreamResampler, resample_whole
from server.errors import to_api_error
from server.http.asgi.sending import Outcome, TrackedResponse
from server.http.routes.headers import INSTRUCTIONS_IGNORED_HEADER, SEED_HEADER
from server.speech.planning import SpeechPlan
from server.speech.request_log import SpeechStats
from server.speech.synthesis import SpeechService
from server.speech.timestamps import SegmentWords, WordTimer, with_words

log = logging.getLogger("qwen3-tts")

TIMESTAMPS_EVENT = "speech.audio.timestamps"
STREAM_HEADERS = {"X-Accel-Buffering": "no", "Cache-Control": "no-cache"}


class SegmentStream:
    """A speech plan's audio, chunk by chunk (or sentence by sentence with `per_sentence`),
    with the first one already synthesised."""

    def __init__(
        self, service: SpeechService, plan: SpeechPlan, *, per_sentence: bool = False, timer: WordTimer | None = None
    ) -> None:
        self.service = service
        self.plan = plan
        self.stats = SpeechStats()
        self.per_sentence = per_sentence
        listener = timer.segment_done if timer is not None else None
        audio = (service.sentences if per_sentence else service.chunks)(plan, self.stats, listener)
        # With a timer, each segment's words come between the chunks, after the segment's audio.
        self._segments = with_words(audio, timer)
        self._first: np.ndarray | SegmentWords | None = None
        self._failure: Outcome | None = None
        self._finished = False

    async def open(self) -> SegmentStream:
        """Synthesise the first chunk; raises (and logs) what would have failed the request."""
        try:
            self._first = await anext(self._segments)
        except BaseException as exc:
            await self.finish(Outcome(to_api_error(exc).status, str(exc) or type(exc).__name__))
            raise
        return self

    @property
    def deadline(self) -> float:
        """When REQUEST_TIMEOUT runs out, in event-loop time: it bounds sending too."""
        elapsed = time.perf_counter() - self.stats.started
        return asyncio.get_running_loop().time() - elapsed + self.service.engine.limits.request_timeout

    def headers(self) -> dict[str, str]:
        headers = dict(STREAM_HEADERS) | seed_header(self.plan)
        headers["X-Sample-Rate"] = str(self.plan.sample_rate)
        if self.stats.instructions_ignored:
            headers[INSTRUCTIONS_IGNORED_HEADER] = "the loaded model does not follow instructions"
        return headers

    async def __aiter__(self) -> AsyncIterator[np.ndarray | SegmentWords]:
        """All the audio (and the words, when timed); a failure is remembered for the log line."""
        try:
            if self._first is not None:
                first, self._first = self._first, None
                yield first
            async for pcm in self._segments:
                yield pcm
        except Exception as exc:
            self._failure = Outcome(to_api_error(exc).status, str(exc) or type(exc).__name__)
            raise

    async def finish(self, outcome: Outcome) -> None:
        """Stop the work (frees the queue slot) and log the request once, with the status
        it really ended with: a failure inside the stream outranks how the HTTP side ended."""
        if self._finished:
            return
        self._finished = True
        await self._segments.aclose()
        final = self._failure or outcome
        self.service.log_request(self.plan, self.stats, final.status, final.error)

    def response(self, inner: Response) -> TrackedResponse:
        return TrackedResponse(inner, self.finish, self.deadline)


class _StreamOutput:
    """One stream's resampler and encoder: chunks in at 24 kHz, bytes out at the plan's
    rate. The resampler keeps its filter state across chunks, so seams cannot click."""

    def __init__(self, plan: SpeechPlan) -> None:
        self.resampler = StreamResampler(plan.sample_rate)
        self.encoder: AudioEncoder = create_encoder(plan.format.name, streaming=True, sample_rate=plan.sample_rate)

    def encode(self, pcm: np.ndarray) -> bytes:
        return self.encoder.encode(self.resampler.process(pcm))

    def finish(self) -> bytes:
        tail = self.resampler.finish()
        return (self.encoder.encode(tail) if tail.size else b"") + self.encoder.finish()


async def _encode(output: _StreamOutput, pcm: np.ndarray | None, stats: SpeechStats) -> bytes:
    started = time.perf_counter()
    data = await asyncio.to_thread(output.encode, pcm) if pcm is not None else output.finish()
    stats.encode_ms += (time.perf_counter() - started) * 1000
    return data


async def audio_pieces(stream: SegmentStream) -> AsyncIterator[bytes | SegmentWords]:
    """The plan's audio as one file in its format, sent as it is produced, with each
    segment's words where the stream is timed."""
    output = _StreamOutput(stream.plan)
    async for piece in stream:
        if isinstance(piece, SegmentWords):
            yield piece
            continue
        data = await _encode(output, piece, stream.stats)
        stream.stats.mark_sent(int(piece.shape[0]))
        if data:
            yield data
    tail = await _encode(output, None, stream.stats)
    if tail:
        yield tail


async def audio_bytes(stream: SegmentStream) -> AsyncIterator[bytes]:
    """The plan's audio alone, as one file in its format."""
    async for piece in audio_pieces(stream):
        if isinstance(piece, bytes):
            yield piece


def audio_response(stream: SegmentStream) -> TrackedResponse:
    headers = stream.headers()
    headers["Content-Disposition"] = f'attachment; filename="speech.{stream.plan.format.extension}"'
    return stream.response(
        StreamingResponse(audio_bytes(stream), media_type=stream.plan.format.media_type, headers=headers)
    )


def seed_header(plan: SpeechPlan) -> dict[str, str]:
    """The seed the audio was generated with (the client's, or one drawn for it)."""
    return {SEED_HEADER: str(plan.job.seed)}


def _json(event: dict[str, Any]) -> str:
    return orjson.dumps(event).decode()


async def openai_events(stream: SegmentStream) -> AsyncIterator[str]:
    """OpenAI's speech SSE: `speech.audio.delta` events, then `speech.audio.done` with usage,
    or `speech.audio.error` (the extension vLLM-Omni uses) when synthesis fails mid-stream."""
    try:
        async for piece in audio_pieces(stream):
            if isinstance(piece, SegmentWords):
                # Ours, with `timestamps: true`: a segment's words, after its last delta.
                yield _json({"type": TIMESTAMPS_EVENT, **piece.as_json()})
                continue
            yield _json({"type": "speech.audio.delta", "audio": base64.b64encode(piece).decode()})
    except Exception as exc:
        yield _json({"type": "speech.audio.error", "error": to_api_error(exc).body()["error"]})
        return
    usage = {
        "input_tokens": stream.stats.input_tokens,
        "output_tokens": stream.stats.output_frames,
        "total_tokens": stream.stats.input_tokens + stream.stats.output_frames,
    }
    # finish_reason and seed are ours (how generation ended, how to reproduce it), next to
    # OpenAI's fields.
    yield _json(
        {
            "type": "speech.audio.done",
            "usage": usage,
            "finish_reason": stream.stats.finish_reason.value,
            "seed": stream.plan.job.seed,
        }
    )


def finish_event(stream: SegmentStream) -> ServerSentEvent:
    """`event: finish`, how the sentences ended: `{"finish_reason": ..., "sentences": [...]}`."""
    stats = stream.stats
    body = {"finish_reason": stats.finish_reason.value, "sentences": [r.value for r in stats.finish_reasons]}
    return ServerSentEvent(data=_json(body), event="finish")


async def pcm16_pieces(stream: SegmentStream) -> AsyncIterator[bytes | SegmentWords]:
    """Each piece of the stream as int16 LE mono PCM at the plan's rate (24 kHz by default),
    with each segment's words where the stream is timed. A sentence (a per-sentence stream) is
    resampled whole, as the complete phrase it is; frame-level chunks go through one streaming
    resampler, so their seams cannot click."""
    rate = stream.plan.sample_rate
    resampler = None if stream.per_sentence else StreamResampler(rate)
    async for piece in stream:
        if isinstance(piece, SegmentWords):
            yield piece
            continue
        started = time.perf_counter()
        if resampler is not None:
            out = await asyncio.to_thread(resampler.process, piece)
        else:
            out = piece if rate == SAMPLE_RATE else await asyncio.to_thread(resample_whole, piece, rate)
        stream.stats.encode_ms += (time.perf_counter() - started) * 1000
        stream.stats.mark_sent(int(piece.shape[0]))
        if out.size:
            yield to_pcm16_bytes(out)
    tail = resampler.finish() if resampler is not None else None
    if tail is not None and tail.size:
        yield to_pcm16_bytes(tail)


async def sentence_events(stream: SegmentStream) -> AsyncIterator[str | ServerSentEvent]:
    """The sentence stream: one event per piece (a sentence, or a few codec frames with
    `stream_mode: token`), `data: <base64 of int16 LE mono PCM at the plan's rate>`, then
    `data: [DONE]`; on failure `data: [ERROR] <message>` ends it. After [DONE], a named
    `finish` event tells how each sentence ended (after it, so that a client of the earlier
    server, which stops reading at [DONE], never sees an event it does not know)."""
    try:
        async for piece in pcm16_pieces(stream):
            if isinstance(piece, SegmentWords):  # `timestamps: true`: a segment's words, after it
                yield ServerSentEvent(data=_json(piece.as_json()), event="words")
                continue
            yield base64.b64encode(piece).decode()
    except Exception as exc:
        yield f"[ERROR] {to_api_error(exc).message}"
        return
    yield "[DONE]"
    yield finish_event(stream)


def sse_response(
    events: AsyncIterator[str] | AsyncIterator[str | ServerSentEvent], stream: SegmentStream
) -> TrackedResponse:
    return stream.response(EventSourceResponse(events, headers=stream.headers(), ping=15))
