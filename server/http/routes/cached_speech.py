"""Speech responses through the output cache, wrapped around the routes: a hit is answered
like a fresh response (a whole file with its length, or streamed in chunks with the
stream's headers), a miss is recorded while it is sent and kept once it completed.

A `seed`, or a `Cache-Control: no-cache` / `no-store` request header, bypasses the cache
both ways: nothing is read from it and nothing is kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, Literal

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from server.engine.jobs import FinishReason
from server.http.routes.headers import FINISH_REASON_HEADER, INSTRUCTIONS_IGNORED_HEADER, SEED_HEADER
from server.http.routes.streaming import STREAM_HEADERS, seed_header
from server.speech.output_cache import CachedAudio, OutputCache, cache_key
from server.speech.planning import SpeechPlan
from server.speech.request_log import SpeechStats
from server.speech.synthesis import SpeechService

# A streamed hit is sent in pieces of this size, like a fresh stream, not as one write.
HIT_CHUNK_BYTES = 32 * 1024

CacheState = Literal["hit", "miss", "bypass"]


def attachment_headers(
    plan: SpeechPlan, instructions_ignored: bool, finish_reason: FinishReason | None = None
) -> dict[str, str]:
    headers = {
        "Content-Disposition": f'attachment; filename="speech.{plan.format.extension}"',
        "X-Sample-Rate": str(plan.sample_rate),
        **seed_header(plan),
    }
    if finish_reason is not None:  # a whole file: how its generation ended is known
        headers[FINISH_REASON_HEADER] = finish_reason.value
    if instructions_ignored:
        headers[INSTRUCTIONS_IGNORED_HEADER] = "the loaded model does not follow instructions"
    return headers


def _bypassed(request: Request, plan: SpeechPlan) -> bool:
    directives = request.headers.get("cache-control", "").lower()
    return plan.seed_sent or "no-cache" in directives or "no-store" in directives


class CachedSpeech:
    """One request's dealings with the output cache."""

    def __init__(self, request: Request, service: SpeechService, plan: SpeechPlan, streamed: bool) -> None:
        self.service = service
        self.plan = plan
        self.streamed = streamed
        self.cache: OutputCache = request.app.state.output_cache
        self.key: str | None = None
        self.state: CacheState | None = None  # None: the cache is off
        if self.cache.enabled:
            if _bypassed(request, plan):
                self.state = "bypass"
            else:
                self.key = cache_key(plan, service.engine.slots[plan.job.slot].model_id, streamed)
                self.state = "miss"

    def new_stats(self) -> SpeechStats:
        return SpeechStats(cache=self.state)

    def lookup(self) -> Response | None:
        """The cached response, answered as this request asked for it, or None."""
        entry = self.cache.get(self.key) if self.key is not None else None
        if entry is None:
            return None
        self.state = "hit"
        stats = self.new_stats()
        stats.instructions_ignored = entry.instructions_ignored
        headers = attachment_headers(self.plan, entry.instructions_ignored) | {SEED_HEADER: str(entry.seed)}
        media_type = self.plan.format.media_type
        if not self.streamed:
            stats.mark_sent(entry.samples)
            self.service.log_request(self.plan, stats, 200)
            # Only responses whose every segment ended on end-of-speech are kept.
            headers[FINISH_REASON_HEADER] = FinishReason.STOP.value
            return Response(entry.data, media_type=media_type, headers=headers)
        return StreamingResponse(self._replay(entry, stats), media_type=media_type, headers=STREAM_HEADERS | headers)

    async def _replay(self, entry: CachedAudio, stats: SpeechStats) -> AsyncIterator[bytes]:
        status, error = 200, None
        try:
            for offset in range(0, len(entry.data), HIT_CHUNK_BYTES):
                if offset == 0:
                    stats.mark_sent(entry.samples)
                else:
                    stats.chunks += 1
                yield entry.data[offset : offset + HIT_CHUNK_BYTES]
        except asyncio.CancelledError:
            status, error = 499, "client disconnected"
            raise
        finally:
            self.service.log_request(self.plan, stats, status, error)

    def store(self, data: bytes, stats: SpeechStats) -> None:
        """Keep a fresh response that completed, and only one whose every segment ended on
        end-of-speech: a capped or guarded one is not worth serving again."""
        if self.key is not None and stats.clean:
            self.cache.put(self.key, CachedAudio(data, stats.instructions_ignored, stats.samples, self.plan.job.seed))

    def recording(self, body: AsyncIterable[Any], stats: SpeechStats) -> AsyncIterable[Any]:
        """`body` passed through unchanged; kept in the cache once it has been sent whole.
        Recording stops (and nothing is kept) once it outgrows the cache's byte limit."""
        if self.key is None:
            return body
        return self._record(body, stats)

    async def _record(self, body: AsyncIterable[Any], stats: SpeechStats) -> AsyncIterator[Any]:
        parts: list[bytes] | None = []
        size = 0
        async for chunk in body:
            if parts is not None:
                size += len(chunk)
                if self.cache.fits(size):
                    parts.append(bytes(chunk))
                else:
                    parts = None
            yield chunk
        if parts is not None:
            self.store(b"".join(parts), stats)
