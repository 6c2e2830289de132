"""What the speech routers share to answer a request: one whole file synthesised, encoded at
the plan's rate and logged once it is sent, and the app's word timer."""

from __future__ import annotations

import asyncio

import numpy as np
from fastapi import Request
from fastapi.responses import Response

from server.audio.encoders import encode_whole_at
from server.errors import to_api_error
from server.http.asgi.sending import Outcome, TrackedResponse
from server.http.routes.cached_speech import attachment_headers
from server.speech.planning import SpeechPlan
from server.speech.request_log import SpeechStats
from server.speech.synthesis import SegmentListener, SpeechService
from server.speech.timestamps import WordTiming


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


def timing_of(request: Request) -> WordTiming:
    """The word timer the app was built with (its forced aligner, or none)."""
    timing: WordTiming = request.app.state.word_timing
    return timing
