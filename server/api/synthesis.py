"""The speech service: turns a validated request into an engine job, runs it, and hands
back audio, whole or as a stream. Every speech endpoint goes through here, so streaming
and non-streaming responses share one path and cannot drift apart."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np

from server.api.catalog import ModelCatalog, resolve_preset_voice, unknown_voice
from server.api.schemas import SpeechRequest
from server.audio.dsp import change_speed
from server.audio.formats import FormatSpec, UnknownFormatError, get_format
from server.engine.jobs import SAMPLE_RATE, SegmentAudio, SynthesisJob
from server.engine.scheduler import Engine
from server.errors import invalid_request
from server.logs import request_id_var
from server.text import UnsupportedLanguageError, detect_language, normalize_language, split_sentences

request_log = logging.getLogger("qwen3-tts")

INSTRUCTIONS_IGNORED_HEADER = "X-Instructions-Ignored"


@dataclass(frozen=True)
class SpeechPlan:
    """Everything about a request that was validated before any audio is produced."""

    job: SynthesisJob
    format: FormatSpec
    speed: float
    endpoint: str
    voice_label: str
    chars: int
    instructions_given: bool


@dataclass
class SpeechStats:
    """The latency breakdown and counters of one request, logged once at its end."""

    started: float = field(default_factory=time.perf_counter)
    queue_ms: float = 0.0
    load_ms: float = 0.0
    inference_ms: float = 0.0
    encode_ms: float = 0.0
    ttfa_ms: float | None = None
    chunks: int = 0
    segments_done: int = 0
    input_tokens: int = 0
    output_frames: int = 0
    samples: int = 0
    instructions_ignored: bool = False

    def add_segment(self, segment: SegmentAudio) -> None:
        self.segments_done += 1
        self.queue_ms += segment.queued_ms
        self.load_ms += segment.load_ms
        self.inference_ms += segment.inference_ms
        self.input_tokens += segment.input_tokens
        self.output_frames += segment.output_frames

    def mark_sent(self, samples: int) -> None:
        """Record one chunk of audio handed to the client."""
        if self.ttfa_ms is None:
            self.ttfa_ms = (time.perf_counter() - self.started) * 1000
        self.chunks += 1
        self.samples += samples


def resolve_format(name: str) -> FormatSpec:
    try:
        return get_format(name)
    except UnknownFormatError as exc:
        raise invalid_request(str(exc), param="response_format", code="unsupported_format") from exc


def resolve_language(requested: str | None, text: str) -> str:
    """The requested language, or one detected from the script when absent (`Auto` when the
    script does not tell, which lets the model decide)."""
    if requested is None or not requested.strip():
        return detect_language(text)
    try:
        return normalize_language(requested)
    except UnsupportedLanguageError as exc:
        raise invalid_request(str(exc), param="language", code="unsupported_language") from exc


def segments_of(text: str) -> tuple[str, ...]:
    """Sentences to synthesise one by one; text with no sentence in it is spoken whole."""
    return tuple(split_sentences(text)) or (text.strip(),)


class SpeechService:
    def __init__(self, engine: Engine, models: ModelCatalog, token_cap: int) -> None:
        self.engine = engine
        self.models = models
        self.token_cap = token_cap

    def plan_preset(self, request: SpeechRequest, endpoint: str) -> SpeechPlan:
        """Validate a speech request for a preset voice and turn it into a plan."""
        self.models.require(request.model)
        fmt = resolve_format(request.response_format)
        preset = resolve_preset_voice(request.voice_name)
        if preset is None:
            raise unknown_voice(request.voice_name)
        job = SynthesisJob(
            slot="custom_voice",
            segments=segments_of(request.input),
            language=resolve_language(request.language, request.input),
            token_cap=self.token_cap,
            speaker=preset.speaker,
            instruct=request.instructions or None,
            seed=request.seed,
        )
        return SpeechPlan(
            job=job,
            format=fmt,
            speed=request.speed,
            endpoint=endpoint,
            voice_label=preset.speaker
            if preset.requested == preset.speaker
            else f"{preset.requested}->{preset.speaker}",
            chars=len(request.input),
            instructions_given=bool(request.instructions),
        )

    async def segments(self, plan: SpeechPlan, stats: SpeechStats) -> AsyncIterator[np.ndarray]:
        """The job's audio, segment by segment, with speed applied."""
        slot = self.engine.slots[plan.job.slot]
        async for segment in self.engine.synthesize(plan.job):
            stats.add_segment(segment)
            if segment.index == 0 and plan.instructions_given:
                backend = slot.backend
                stats.instructions_ignored = backend is not None and not backend.honours_instruct
            pcm = segment.pcm
            if plan.speed != 1.0:
                started = time.perf_counter()
                pcm = await asyncio.to_thread(change_speed, pcm, plan.speed, SAMPLE_RATE)
                stats.encode_ms += (time.perf_counter() - started) * 1000
            yield pcm

    async def collect(self, plan: SpeechPlan, stats: SpeechStats) -> np.ndarray:
        parts = [pcm async for pcm in self.segments(plan, stats)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)

    def log_request(self, plan: SpeechPlan, stats: SpeechStats, status: int, error: str | None = None) -> None:
        fields: dict[str, object] = {
            "request_id": request_id_var.get(),
            "endpoint": plan.endpoint,
            "status": status,
            "queue_ms": round(stats.queue_ms, 1),
            "load_ms": round(stats.load_ms, 1),
            "inference_ms": round(stats.inference_ms, 1),
            "encode_ms": round(stats.encode_ms, 1),
            "total_ms": round((time.perf_counter() - stats.started) * 1000, 1),
            "ttfa_ms": None if stats.ttfa_ms is None else round(stats.ttfa_ms, 1),
            "chunks": stats.chunks,
            "segments": len(plan.job.segments),
            "segments_done": stats.segments_done,
            "chars": plan.chars,
            "voice": plan.voice_label,
            "format": plan.format.name,
            "language": plan.job.language,
            "audio_seconds": round(stats.samples / SAMPLE_RATE, 3),
            "output_frames": stats.output_frames,
        }
        if stats.instructions_ignored:
            fields["instructions_ignored"] = True
        if error is not None:
            fields["error"] = error
        request_log.info("speech request", extra=fields)
