"""POST /v1/audio/speech (OpenAI's endpoint) and POST /v1/audio/speech/stream (sentence SSE)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.api.schemas import SpeechRequest
from server.api.sending import Outcome, TrackedResponse
from server.api.streaming import (
    SegmentStream,
    audio_response,
    openai_events,
    sentence_events,
    sse_response,
)
from server.api.synthesis import INSTRUCTIONS_IGNORED_HEADER, SpeechPlan, SpeechService, SpeechStats
from server.audio.encoders import encode_whole
from server.errors import to_api_error

router = APIRouter()


def attachment_headers(plan: SpeechPlan, stats: SpeechStats) -> dict[str, str]:
    headers = {"Content-Disposition": f'attachment; filename="speech.{plan.format.extension}"'}
    if stats.instructions_ignored:
        headers[INSTRUCTIONS_IGNORED_HEADER] = "the loaded model does not follow instructions"
    return headers


async def render_whole(service: SpeechService, plan: SpeechPlan) -> Response:
    """Synthesise everything, encode it as one file, answer it with its length known. The
    request is logged once the file has been handed over (or the client stalled or left)."""
    stats = SpeechStats()
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

    response = Response(data, media_type=plan.format.media_type, headers=attachment_headers(plan, stats))
    return TrackedResponse(response, log_outcome)


@router.post("/v1/audio/speech")
async def create_speech(body: SpeechRequest, request: Request) -> Response:
    service: SpeechService = request.app.state.speech
    plan = await service.plan_request(body, endpoint="/v1/audio/speech")
    if body.stream_format == "sse":
        stream = await SegmentStream(service, plan).open()
        return sse_response(openai_events(stream), stream)
    if not body.stream:
        return await render_whole(service, plan)
    return audio_response(await SegmentStream(service, plan).open())


@router.post("/v1/audio/speech/stream")
async def stream_sentences(body: SpeechRequest, request: Request) -> Response:
    service: SpeechService = request.app.state.speech
    plan = await service.plan_request(body, endpoint="/v1/audio/speech/stream")
    stream = await SegmentStream(service, plan).open()
    return sse_response(sentence_events(stream), stream)
