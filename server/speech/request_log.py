"""The record of one request: its latency breakdown and counters as it runs (`SpeechStats`),
and, once it ends, one `RequestLog.write` that sends the same fields to the log line, the
recent list (/v1/debug/recent) and the metrics, so the three never disagree."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from server.engine.jobs import SAMPLE_RATE, SAMPLES_PER_FRAME, AudioChunk, FinishReason, request_finish_reason
from server.logs import request_id_var, request_logged_var
from server.metrics import Metrics
from server.speech.planning import SpeechPlan
from server.speech.recent import RecentRequests

request_log = logging.getLogger("qwen3-tts")


def finish_reason_for(status: int, segments: list[FinishReason]) -> FinishReason:
    """How a request ended: its segments' reason when it completed, else what stopped it."""
    if status == 200:
        return request_finish_reason(segments)
    if status == 499:  # the client left
        return FinishReason.CANCELLED
    if status == 504:  # REQUEST_TIMEOUT
        return FinishReason.TIMEOUT
    return FinishReason.ERROR


@dataclass
class SpeechStats:
    """The latency breakdown and counters of one request, logged once at its end."""

    started: float = field(default_factory=time.perf_counter)
    queue_ms: float = 0.0
    load_ms: float = 0.0
    inference_ms: float = 0.0
    encode_ms: float = 0.0
    ttfa_ms: float | None = None
    first_chunk_ms: float | None = None  # the engine's first chunk, before encoding and sending
    first_chunk_frames: int | None = None
    chunks: int = 0
    segments_done: int = 0
    input_tokens: int = 0
    output_frames: int = 0
    samples: int = 0
    batch_max: int = 0
    instructions_ignored: bool = False
    cache: str | None = None  # hit, miss or bypass where the output cache applies
    finish_reasons: list[FinishReason] = field(default_factory=list)  # per finished segment

    @property
    def finish_reason(self) -> FinishReason:
        """The reason of the segments so far (STOP when every one ended on end-of-speech)."""
        return request_finish_reason(self.finish_reasons)

    @property
    def clean(self) -> bool:
        """Every segment ended on end-of-speech: the only kind of response worth keeping."""
        return bool(self.finish_reasons) and self.finish_reason is FinishReason.STOP

    def add_chunk(self, chunk: AudioChunk) -> None:
        if self.first_chunk_ms is None:
            self.first_chunk_ms = (time.perf_counter() - self.started) * 1000
            self.first_chunk_frames = chunk.frames
        self.output_frames += chunk.frames  # counted as delivered, so a cut-short request counts right
        self.output_frames -= chunk.trim_samples // SAMPLES_PER_FRAME  # a guarded tail cut afterwards
        segment = chunk.stats
        if segment is None:
            return
        self.finish_reasons.append(segment.finish_reason)
        self.segments_done += 1
        self.queue_ms += segment.queued_ms
        self.load_ms += segment.load_ms
        self.inference_ms += segment.generate_ms
        self.input_tokens += segment.input_tokens
        self.batch_max = max(self.batch_max, segment.batch_max)

    def mark_sent(self, samples: int) -> None:
        """Record one chunk of audio handed to the client."""
        if self.ttfa_ms is None:
            self.ttfa_ms = (time.perf_counter() - self.started) * 1000
        self.chunks += 1
        self.samples += samples


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


class RequestLog:
    """Where every finished request is written: the `speech request` log line, the recent
    list and the metrics (either may be absent). `token_cap` is the server's MAX_NEW_TOKENS:
    a request's own cap is logged only when it asked for less."""

    def __init__(self, token_cap: int, metrics: Metrics | None = None, recent: RecentRequests | None = None) -> None:
        self.token_cap = token_cap
        self.metrics = metrics
        self.recent = recent

    def write(self, plan: SpeechPlan, stats: SpeechStats, status: int, error: str | None = None) -> None:
        total_ms = (time.perf_counter() - stats.started) * 1000
        fields = self.fields(plan, stats, status, total_ms, error)
        request_log.info("speech request", extra=fields)
        request_logged_var.set(True)
        if self.recent is not None:
            self.recent.add(fields)
        if self.metrics is not None:
            self.metrics.observe_request(
                endpoint=plan.endpoint,
                status=status,
                queue_ms=stats.queue_ms,
                inference_ms=stats.inference_ms,
                encode_ms=stats.encode_ms,
                total_ms=total_ms,
                ttfa_ms=stats.ttfa_ms,
                audio_seconds=stats.samples / SAMPLE_RATE,
                chars=plan.chars,
                finish_reason=str(fields["finish_reason"]),
            )

    def fields(
        self, plan: SpeechPlan, stats: SpeechStats, status: int, total_ms: float, error: str | None = None
    ) -> dict[str, object]:
        """The request's log fields: always the same keys, then those that differ from the
        server's defaults (so a plain request's line stays short)."""
        fields: dict[str, object] = {
            "request_id": request_id_var.get(),
            "endpoint": plan.endpoint,
            "status": status,
            "queue_ms": round(stats.queue_ms, 1),
            "load_ms": round(stats.load_ms, 1),
            "inference_ms": round(stats.inference_ms, 1),
            "encode_ms": round(stats.encode_ms, 1),
            "total_ms": round(total_ms, 1),
            "ttfa_ms": _ms(stats.ttfa_ms),
            "first_chunk_ms": _ms(stats.first_chunk_ms),
            "first_chunk_frames": stats.first_chunk_frames,
            "chunks": stats.chunks,
            "segments": len(plan.segments),
            "segments_done": stats.segments_done,
            "chars": plan.chars,
            "voice": plan.voice_label,
            "format": plan.format.name,
            "language": plan.job.language,
            "audio_seconds": round(stats.samples / SAMPLE_RATE, 3),
            "output_frames": stats.output_frames,
            "batch_max": stats.batch_max,
            "finish_reason": finish_reason_for(status, stats.finish_reasons).value,
            "seed": plan.job.seed,
        }
        if len(stats.finish_reasons) > 1:
            fields["segment_finish_reasons"] = [reason.value for reason in stats.finish_reasons]
        if stats.instructions_ignored:
            fields["instructions_ignored"] = True
        if stats.cache is not None:
            fields["cache"] = stats.cache
        sampling = plan.job.sampling.describe()
        if sampling:
            fields["sampling"] = sampling
        if plan.job.token_cap != self.token_cap:
            fields["max_new_tokens"] = plan.job.token_cap
        if plan.sample_rate != SAMPLE_RATE:
            fields["sample_rate"] = plan.sample_rate
        if plan.gain != 1.0:
            fields["gain"] = round(plan.gain, 4)
        if plan.layout is not None:
            # How the text was controlled (pauses, ssml_elements, pronunciation_hits), never the text.
            fields.update(plan.layout.counts.describe())
            if plan.rest:
                fields["parts"] = len(plan.parts)
        if error is not None:
            fields["error"] = error
        return fields
