"""POST /v1/audio/speech (OpenAI's endpoint), POST /v1/audio/speech/stream (sentence SSE) and
POST /v1/audio/speech/stream/pcm (raw PCM chunks, as the earlier server answered). The last
two take the earlier server's `stream_mode`: `sentence` sends one chunk per sentence, `token`
frame-level chunks (a few codec frames each)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from server.audio.encoders import encode_whole_at
from server.errors import invalid_request, to_api_error
from server.http.asgi.sending import Outcome, TrackedResponse
from server.http.routes.cached_speech import CachedSpeech, attachment_headers
from server.http.routes.streaming import (
    SegmentStream,
    audio_response,
    openai_events,
    pcm16_pieces,
    sentence_events,
    sse_response,
)
from server.speech.planning import SpeechPlan
from server.speech.request_log import SpeechStats
from server.speech.requests import SpeechRequest, StreamedSpeechRequest
from server.speech.synthesis import SegmentListener, SpeechService
from server.speech.timestamps import WordTiming

router = APIRouter()

PCM_ENDPOINT = "/v1/audio/speech/stream/pcm"


def pcm_headers(sample_rate: int) -> dict[str, str]:
    """The raw stream's layout, under our names and the earlier server's (its clients read
    X-PCM-*)."""
    return {
        "X-Sample-Rate": str(sample_rate),
        "X-Sample-Width": "2",
        "X-Channels": "1",
        "X-PCM-Sample-Rate": str(sample_rate),
        "X-PCM-Bit-Depth": "16",
        "X-PCM-Channels": "1",
    }


def encode_at_rate(pcm: np.ndarray, plan: SpeechPlan) -> bytes:
    """The whole utterance resampled to the plan's rate (as a stream of it would be) and
    encoded as one file whose header carries that rate."""
    return encode_whole_at(pcm, plan.format.name, plan.sample_rate)


async def synthesize_file(
    service: SpeechService, plan: SpeechPlan, stats: SpeechStats, on_segment: SegmentListener | None = None
) -> bytes:
    """Synthesise everything and encode it as one file; a failure is logged before it is raised."""
    try:
        pcm = await service.collect(plan, stats, on_segment)
        stats.mark_sent(int(pcm.shape[0]))
        started = asyncio.get_running_loop().time()
        data = await asyncio.to_thread(encode_at_rate, pcm, plan)
        stats.encode_ms += (asyncio.get_running_loop().time() - started) * 1000
    except BaseException as exc:
        service.log_request(plan, stats, to_api_error(exc).status, error=str(exc) or type(exc).__name__)
        raise
    return data


def logged_once_sent(
    service: SpeechService, plan: SpeechPlan, stats: SpeechStats, response: Response
) -> TrackedResponse:
    """The response, with the request logged once it has been handed over (or the client
    stalled or left)."""

    async def log_outcome(outcome: Outcome) -> None:
        service.log_request(plan, stats, outcome.status, outcome.error)

    return TrackedResponse(response, log_outcome)


async def render_whole(service: SpeechService, plan: SpeechPlan, stats: SpeechStats | None = None) -> TrackedResponse:
    """Synthesise everything, encode it as one file, answer it with its length known."""
    stats = stats or SpeechStats()
    data = await synthesize_file(service, plan, stats)
    headers = attachment_headers(plan, stats.instructions_ignored, stats.finish_reason)
    return logged_once_sent(service, plan, stats, Response(data, media_type=plan.format.media_type, headers=headers))


async def speak(request: Request, service: SpeechService, plan: SpeechPlan, streamed: bool) -> Response:
    """Audio in the plan's format, from the output cache or freshly synthesised (and kept)."""
    cached = CachedSpeech(request, service, plan, streamed)
    hit = cached.lookup()
    if hit is not None:
        return hit
    if not streamed:
        stats = cached.new_stats()
        response = await render_whole(service, plan, stats)
        cached.store(bytes(response.inner.body), stats)
        return response
    stream = SegmentStream(service, plan)
    stream.stats.cache = cached.state
    tracked = audio_response(await stream.open())
    inner = tracked.inner
    assert isinstance(inner, StreamingResponse)
    inner.body_iterator = cached.recording(inner.body_iterator, stream.stats)
    return tracked


def timing_of(request: Request) -> WordTiming:
    timing: WordTiming = request.app.state.word_timing
    return timing


@router.post("/v1/audio/speech")
async def create_speech(body: SpeechRequest, request: Request) -> Response:
    service: SpeechService = request.app.state.speech
    if body.timestamps:
        if body.stream_format != "sse":
            raise invalid_request(
                "timestamps: true needs stream_format sse here; POST /v1/audio/speech/captioned answers "
                "a whole file with its word timestamps",
                param="timestamps",
            )
        timing_of(request).require()
    plan = await service.plan_request(body, endpoint="/v1/audio/speech")
    if body.stream_format == "sse":
        timer = timing_of(request).timer(plan) if body.timestamps else None
        stream = await SegmentStream(service, plan, timer=timer).open()
        return sse_response(openai_events(stream), stream)
    return await speak(request, service, plan, streamed=body.stream)


@router.post("/v1/audio/speech/stream")
async def stream_sentences(body: StreamedSpeechRequest, request: Request) -> Response:
    """One SSE event per sentence, or per few codec frames with `stream_mode: token`."""
    service: SpeechService = request.app.state.speech
    if body.timestamps:
        timing_of(request).require()
    per_sentence = body.stream_mode != "token"
    plan = await service.plan_request(body, endpoint="/v1/audio/speech/stream", per_sentence=per_sentence)
    timer = timing_of(request).timer(plan) if body.timestamps else None
    stream = await SegmentStream(service, plan, per_sentence=per_sentence, timer=timer).open()
    return sse_response(sentence_events(stream), stream)


async def pcm_bytes(stream: SegmentStream) -> AsyncIterator[bytes]:
    """The stream's pieces as raw PCM, one write each (the sentence stream's payloads, raw)."""
    async for piece in pcm16_pieces(stream):
        if isinstance(piece, bytes):
            yield piece


async def stream_pcm_sentences(service: SpeechService, plan: SpeechPlan) -> Response:
    """`stream_mode: sentence`: one raw PCM write per sentence, each resampled whole. Not
    through the output cache, which keeps the frame-level stream (like the sentence SSE)."""
    stream = await SegmentStream(service, plan, per_sentence=True).open()
    headers = stream.headers() | {"Content-Disposition": 'attachment; filename="speech.pcm"'}
    return stream.response(StreamingResponse(pcm_bytes(stream), media_type=plan.format.media_type, headers=headers))


@router.post(PCM_ENDPOINT)
async def stream_pcm(body: StreamedSpeechRequest, request: Request) -> Response:
    """The speech body answered as raw int16 little-endian mono PCM, streamed in chunks: a
    few codec frames each (`stream_mode: token`, the default) or one per sentence."""
    if "response_format" in body.model_fields_set and body.response_format != "pcm":
        raise invalid_request("this endpoint answers raw pcm only", param="response_format")
    if body.stream_format != "audio":
        raise invalid_request("this endpoint streams raw pcm; use /v1/audio/speech for sse", param="stream_format")
    if body.timestamps:
        raise invalid_request(
            "raw pcm has no place for word timestamps; use /v1/audio/speech/captioned or stream_format sse",
            param="timestamps",
        )
    if body.stream_mode is not None and not body.stream:
        raise invalid_request(
            "stream_mode chooses how a stream is cut; stream: false answers one whole file", param="stream_mode"
        )
    service: SpeechService = request.app.state.speech
    per_sentence = body.stream_mode == "sentence"
    pcm_body = body.model_copy(update={"response_format": "pcm"})
    plan = await service.plan_request(pcm_body, endpoint=PCM_ENDPOINT, per_sentence=per_sentence)
    if per_sentence:
        response = await stream_pcm_sentences(service, plan)
    else:
        response = await speak(request, service, plan, streamed=body.stream)
    response.headers.update(pcm_headers(plan.sample_rate))
    return response
