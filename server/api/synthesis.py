"""The speech service: turns a validated request into an engine job, runs it, and hands
back audio, whole or as a stream. Every speech endpoint goes through here, so streaming
and non-streaming responses share one path and cannot drift apart."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from server.api.catalog import ModelCatalog, resolve_preset_voice, unknown_voice
from server.api.schemas import SpeechRequest
from server.audio.dsp import change_speed
from server.audio.formats import FormatSpec, UnknownFormatError, get_format
from server.engine.jobs import SAMPLE_RATE, CloneVoice, SegmentAudio, SlotName, SynthesisJob
from server.engine.models import ModelSlot
from server.engine.scheduler import Engine
from server.errors import invalid_request
from server.logs import request_id_var, request_logged_var
from server.metrics import Metrics
from server.text import UnsupportedLanguageError, detect_language, normalize_language, split_sentences

request_log = logging.getLogger("qwen3-tts")
segment_log = logging.getLogger("qwen3-tts.segments")

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
    batch_max: int = 0
    instructions_ignored: bool = False

    def add_segment(self, segment: SegmentAudio) -> None:
        self.segments_done += 1
        self.queue_ms += segment.queued_ms
        self.load_ms += segment.load_ms
        self.inference_ms += segment.inference_ms
        self.input_tokens += segment.input_tokens
        self.output_frames += segment.output_frames
        self.batch_max = max(self.batch_max, segment.batch_size)

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


@dataclass(frozen=True)
class ResolvedVoice:
    """A request's voice, resolved to the model slot that speaks it."""

    slot: SlotName
    label: str
    speaker: str | None = None
    clone: CloneVoice | None = None


class VoiceResolver(Protocol):
    async def resolve(self, name: str) -> ResolvedVoice:
        """The voice for a request's `voice` value; raises APIError (400) when unknown."""
        ...


class PresetVoices:
    """Resolves the preset speakers and OpenAI's names for them."""

    async def resolve(self, name: str) -> ResolvedVoice:
        preset = resolve_preset_voice(name)
        if preset is None:
            raise unknown_voice(name)
        label = preset.speaker if preset.requested == preset.speaker else f"{preset.requested}->{preset.speaker}"
        return ResolvedVoice(slot="custom_voice", label=label, speaker=preset.speaker)


@dataclass(frozen=True)
class SpeechOptions:
    """The request fields every speech endpoint shares, whatever body they came in."""

    input: str
    response_format: str
    speed: float = 1.0
    language: str | None = None
    instructions: str | None = None
    seed: int | None = None


class SpeechService:
    def __init__(
        self,
        engine: Engine,
        models: ModelCatalog,
        token_cap: int,
        voices: VoiceResolver,
        metrics: Metrics | None = None,
    ) -> None:
        self.engine = engine
        self.models = models
        self.token_cap = token_cap
        self.voices = voices
        self.metrics = metrics

    async def plan_request(self, request: SpeechRequest, endpoint: str) -> SpeechPlan:
        """Validate an OpenAI-shaped speech request and turn it into a plan."""
        self.models.require(request.model)
        fmt = resolve_format(request.response_format)
        voice = await self.voices.resolve(request.voice_name)
        options = SpeechOptions(
            input=request.input,
            response_format=request.response_format,
            speed=request.speed,
            language=request.language,
            instructions=request.instructions,
            seed=request.seed,
        )
        return self.plan(options, voice, fmt, endpoint)

    def plan(self, options: SpeechOptions, voice: ResolvedVoice, fmt: FormatSpec, endpoint: str) -> SpeechPlan:
        """A plan for any voice; every field is validated here, before audio is produced."""
        job = SynthesisJob(
            slot=voice.slot,
            segments=segments_of(options.input),
            language=resolve_language(options.language, options.input),
            token_cap=self.token_cap,
            speaker=voice.speaker,
            clone=voice.clone,
            instruct=options.instructions or None,
            seed=options.seed,
        )
        return SpeechPlan(
            job=job,
            format=fmt,
            speed=options.speed,
            endpoint=endpoint,
            voice_label=voice.label,
            chars=len(options.input),
            instructions_given=bool(options.instructions),
        )

    async def segments(self, plan: SpeechPlan, stats: SpeechStats) -> AsyncGenerator[np.ndarray, None]:
        """The job's audio, segment by segment, with speed applied."""
        slot = self.engine.slots[plan.job.slot]
        synthesized = self.engine.synthesize(plan.job)
        try:
            async for segment in synthesized:
                yield await self._prepare(plan, stats, slot, segment)
        finally:
            # When this generator is closed early, the engine's job is closed with it at once
            # (freeing its queue slot), not whenever the garbage collector gets to it.
            close = getattr(synthesized, "aclose", None)
            if close is not None:
                await close()

    async def _prepare(
        self, plan: SpeechPlan, stats: SpeechStats, slot: ModelSlot, segment: SegmentAudio
    ) -> np.ndarray:
        """One synthesised segment, counted and logged, with speed applied."""
        stats.add_segment(segment)
        segment_log.debug(
            "segment synthesised",
            extra={
                "request_id": request_id_var.get(),
                "segment": segment.index,
                "segments": len(plan.job.segments),
                "inference_ms": round(segment.inference_ms, 1),
                "output_frames": segment.output_frames,
                "batch_size": segment.batch_size,
            },
        )
        if segment.index == 0 and plan.instructions_given:
            backend = slot.backend
            stats.instructions_ignored = backend is not None and not backend.honours_instruct
        pcm = segment.pcm
        if plan.speed != 1.0:
            started = time.perf_counter()
            pcm = await asyncio.to_thread(change_speed, pcm, plan.speed, SAMPLE_RATE)
            stats.encode_ms += (time.perf_counter() - started) * 1000
        return pcm

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
            "batch_max": stats.batch_max,
        }
        if stats.instructions_ignored:
            fields["instructions_ignored"] = True
        if error is not None:
            fields["error"] = error
        request_log.info("speech request", extra=fields)
        request_logged_var.set(True)
        if self.metrics is not None:
            self.metrics.observe_request(
                endpoint=plan.endpoint,
                status=status,
                queue_ms=stats.queue_ms,
                inference_ms=stats.inference_ms,
                encode_ms=stats.encode_ms,
                total_ms=(time.perf_counter() - stats.started) * 1000,
                ttfa_ms=stats.ttfa_ms,
                audio_seconds=stats.samples / SAMPLE_RATE,
                chars=plan.chars,
            )
