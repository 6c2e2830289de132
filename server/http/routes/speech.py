"""POST /v1/audio/speech (OpenAI's endpoint), POST /v1/audio/speech/stream (sentence SSE) and
POST /v1/audio/speech/stream/pcm (raw PCM chunks, as the earlier server answered). The last
two take the earlier server's `stream_mode`: `sentence` sends one chunk per sentence, `token`
frame-level chunks (a few codec frames each)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from server.errors import invalid_request
from server.http.routes.cached_speech import CachedSpeech
from server.http.routes.headers import pcm_headers
from server.http.routes.responding import render_whole, timing_of
from server.http.routes.streaming import (
    SegmentStream,
    audio_response,
    openai_events,
    pcm16_pieces,
    sentence_events,
    sse_response,
)
from server.speech.planning import SpeechPlan
from server.speech.requests import SpeechRequest, StreamedSpeechRequest
from server.speech.synthesis import SpeechService

router = APIRouter()

PCM_ENDPOINT = "/v1/audio/speech/stream/pcm"


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
