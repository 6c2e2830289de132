"""POST /v1/audio/speech (OpenAI's endpoint), POST /v1/audio/speech/stream (sentence SSE) and
POST /v1/audio/speech/stream/pcm (raw PCM chunks, as the earlier server answered)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from server.audio.encoders import encode_whole
from server.engine.jobs import SAMPLE_RATE
from server.errors import invalid_request, to_api_error
from server.http.cached_speech import CachedSpeech, attachment_headers
from server.http.sending import Outcome, TrackedResponse
from server.http.streaming import (
    SegmentStream,
    audio_response,
    openai_events,
    sentence_events,
    sse_response,
)
from server.speech.requests import SpeechRequest
from server.speech.synthesis import SpeechPlan, SpeechService, SpeechStats

router = APIRouter()

PCM_ENDPOINT = "/v1/audio/speech/stream/pcm"
PCM_HEADERS = {"X-Sample-Rate": str(SAMPLE_RATE), "X-Sample-Width": "2", "X-Channels": "1"}


async def render_whole(service: SpeechService, plan: SpeechPlan, stats: SpeechStats | None = None) -> TrackedResponse:
    """Synthesise everything, encode it as one file, answer it with its length known. The
    request is logged once the file has been handed over (or the client stalled or left)."""
    stats = stats or SpeechStats()
    try:
        pcm = await service.collect(plan, stats)
        stats.mark_sent(int(pcm.shape[0]))
        started = asyncio.get_running_loop().time()
        data = await asyncio.to_thread(encode_whole, pcm, plan.format.name)
        stats.encode_ms += (asyncio.get_running_loop().time() - started) * 1000
    except BaseException as exc:
        service.log_request(plan, stats, to_api_error(exc).status, error=str(exc) or type(exc).__name__)
        raise

    async def log_outcome(outcome: Outcome) -> None:
        service.log_request(plan, stats, outcome.status, outcome.error)

    response = Response(
        data, media_type=plan.format.media_type, headers=attachment_headers(plan, stats.instructions_ignored)
    )
    return TrackedResponse(response, log_outcome)


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
    plan = await service.plan_request(body, endpoint="/v1/audio/speech")
    if body.stream_format == "sse":
        stream = await SegmentStream(service, plan).open()
        return sse_response(openai_events(stream), stream)
    return await speak(request, service, plan, streamed=body.stream)


@router.post("/v1/audio/speech/stream")
async def stream_sentences(body: SpeechRequest, request: Request) -> Response:
    service: SpeechService = request.app.state.speech
    plan = await service.plan_request(body, endpoint="/v1/audio/speech/stream", per_sentence=True)
    stream = await SegmentStream(service, plan, per_sentence=True).open()
    return sse_response(sentence_events(stream), stream)


@router.post(PCM_ENDPOINT)
async def stream_pcm(body: SpeechRequest, request: Request) -> Response:
    """The speech body answered as raw int16 little-endian mono PCM, streamed in chunks."""
    if "response_format" in body.model_fields_set and body.response_format != "pcm":
        raise invalid_request("this endpoint answers raw pcm only", param="response_format")
    if body.stream_format != "audio":
        raise invalid_request("this endpoint streams raw pcm; use /v1/audio/speech for sse", param="stream_format")
    service: SpeechService = request.app.state.speech
    plan = await service.plan_request(body.model_copy(update={"response_format": "pcm"}), endpoint=PCM_ENDPOINT)
    response = await speak(request, service, plan, streamed=body.stream)
    response.headers.update(PCM_HEADERS)
    return response
