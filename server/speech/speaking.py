"""Speaking one plan to a listener that takes PCM chunk by chunk, logged once with the status
it really ended with. Protocol-free: a front door hands over how a chunk reaches its client.

The WebSocket has its own speaker (it sends error events itself); the Wyoming server and
vLLM-Omni's speech socket share this one. Both end requests the same way (server/speech/ending.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np

from server.logs import request_id_var
from server.speech.ending import outcome_of
from server.speech.planning import SpeechPlan
from server.speech.request_log import SpeechStats
from server.speech.sending import ClientStalled, send_deadline
from server.speech.synthesis import SegmentListener, SpeechService

Deliver = Callable[[np.ndarray], Awaitable[None]]


async def speak_plan(
    service: SpeechService,
    plan: SpeechPlan,
    request_id: str,
    deliver: Deliver,
    on_segment: SegmentListener | None = None,
) -> None:
    """Hand the plan's audio to `deliver` as the engine produces it (float32 PCM at 24 kHz);
    `on_segment` hears of each segment once its audio is complete (word timing).

    Raises APIError when synthesis fails (queue full, timeout, engine error), after logging
    it; ClientGone or CancelledError when the client left, after stopping the engine job
    and logging 499; ClientStalled when a send made through `bounded_send` waited past
    SEND_TIMEOUT (499) or the request's deadline (504)."""
    token = request_id_var.set(request_id)
    stats = SpeechStats()
    status, error = 200, None
    segments = service.chunks(plan, stats, on_segment)
    # REQUEST_TIMEOUT covers sending, as on HTTP and the WebSocket: `bounded_send` holds
    # every send made from here to it.
    deadline = asyncio.get_running_loop().time() + service.engine.limits.request_timeout
    try:
        with send_deadline(deadline):
            async for pcm in segments:
                await deliver(pcm)
                stats.mark_sent(int(pcm.shape[0]))
    except (Exception, asyncio.CancelledError, ClientStalled) as exc:
        outcome = outcome_of(exc)
        status, error = outcome.status, outcome.error
        if outcome.api_error is None or outcome.api_error is exc:
            raise
        raise outcome.api_error from exc
    finally:
        await segments.aclose()  # stops the engine job when the client left mid-plan
        service.log_request(plan, stats, status, error)
        request_id_var.reset(token)
