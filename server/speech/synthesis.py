"""The speech service: turns a validated request into an engine job, runs it, and hands
back audio, whole or as a stream. Every speech endpoint goes through here, so streaming
and non-streaming responses share one path and cannot drift apart."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from server.audio.dsp import change_speed
from server.audio.formats import FormatSpec, UnknownFormatError, get_format
from server.engine.jobs import (
    SAMPLE_RATE,
    SAMPLES_PER_FRAME,
    AudioChunk,
    ChunkPlan,
    CloneVoice,
    FinishReason,
    SamplingParams,
    SlotName,
    SynthesisJob,
    request_finish_reason,
)
from server.engine.scheduler import Engine
from server.engine.sequence import draw_seed as draw_seed
from server.engine.sequence import segment_seed as segment_seed
from server.errors import invalid_request
from server.logs import request_id_var, request_logged_var
from server.metrics import Metrics
from server.speech.catalog import ModelCatalog, VoiceCatalog
from server.speech.recent import RecentRequests
from server.speech.requests import OmniFields, SamplingFields, SpeechRequest, VoiceFields
from server.text import UnsupportedLanguageError, detect_language, normalize_language
from server.text.pieces import split_pieces

request_log = logging.getLogger("qwen3-tts")
segment_log = logging.getLogger("qwen3-tts.segments")

INSTRUCTIONS_IGNORED_HEADER = "X-Instructions-Ignored"
FINISH_REASON_HEADER = "X-Finish-Reason"


@dataclass(frozen=True)
class SegmentAudio:
    """One segment's audio, complete: what word timing needs of it."""

    index: int
    natural: np.ndarray  # float32 at 24 kHz, before any speed change (what the aligner hears)
    delivered_samples: int  # its length as the client gets it (after the speed change), at 24 kHz


SegmentListener = Callable[[SegmentAudio], None]


def _trimmed(phrase: np.ndarray, trim_samples: int) -> np.ndarray:
    """A whole phrase without the tail a guard cut (see GuardBank)."""
    return phrase[: max(phrase.shape[0] - trim_samples, 0)] if trim_samples else phrase


def finish_reason_for(status: int, segments: list[FinishReason]) -> FinishReason:
    """How a request ended: its segments' reason when it completed, else what stopped it."""
    if status == 200:
        return request_finish_reason(segments)
    if status == 499:  # the client left
        return FinishReason.CANCELLED
    if status == 504:  # REQUEST_TIMEOUT
        return FinishReason.TIMEOUT
    return FinishReason.ERROR


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
    # The rate the client gets (resampled at the front door from the model's 24 kHz) and
    # one linear gain for the whole request, applied to every chunk alike.
    sample_rate: int = SAMPLE_RATE
    gain: float = 1.0
    seed_sent: bool = False  # the client chose the seed (job.seed is always set: drawn when not)


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


class RequestVoices(Protocol):
    async def for_request(self, request: VoiceFields) -> ResolvedVoice:
        """The voice of a whole request (its `voice` and whatever other fields choose one)."""
        ...


class PresetVoices:
    """Resolves the checkpoint's speakers and the names mapped onto them (OpenAI's, VOICE_MAP's)."""

    def __init__(self, catalog: VoiceCatalog | None = None) -> None:
        self.catalog = catalog or VoiceCatalog()

    async def resolve(self, name: str) -> ResolvedVoice:
        speaker = self.catalog.speaker(name)
        if speaker is None:
            raise self.catalog.unknown_voice(name)
        label = speaker if name.strip().lower() == speaker.lower() else f"{name}->{speaker}"
        return ResolvedVoice(slot="custom_voice", label=label, speaker=speaker)


@dataclass(frozen=True)
class SpeechOptions:
    """The request fields every speech endpoint shares, whatever body they came in."""

    input: str
    response_format: str
    speed: float = 1.0
    language: str | None = None
    instructions: str | None = None
    seed: int | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    max_new_tokens: int | None = None
    sample_rate: int = SAMPLE_RATE
    gain: float = 1.0
    # Frames before a stream's first chunk (vLLM-Omni's initial_codec_chunk_frames);
    # None keeps STREAM_FIRST_CHUNK_FRAMES.
    first_chunk_frames: int | None = None


def sampling_of(request: SamplingFields) -> SamplingParams:
    return SamplingParams(
        temperature=request.temperature,
        top_p=request.top_p,
        top_k=request.top_k,
        repetition_penalty=request.repetition_penalty,
    )


def options_of(request: VoiceFields, text: str) -> SpeechOptions:
    """The shared options of a JSON speech request, for `text`."""
    return SpeechOptions(
        input=text,
        response_format=request.response_format,
        speed=request.speed,
        language=request.language,
        instructions=request.instructions,
        seed=request.seed,
        sampling=sampling_of(request),
        max_new_tokens=request.max_new_tokens,
        sample_rate=request.sample_rate,
        gain=request.gain,
        first_chunk_frames=request.initial_codec_chunk_frames if isinstance(request, OmniFields) else None,
    )


class SpeechService:
    def __init__(
        self,
        engine: Engine,
        models: ModelCatalog,
        token_cap: int,
        voices: VoiceResolver,
        metrics: Metrics | None = None,
        chunks: ChunkPlan | None = None,
        recent: RecentRequests | None = None,
        request_voices: RequestVoices | None = None,
    ) -> None:
        self.engine = engine
        self.models = models
        self.token_cap = token_cap
        self.voices = voices
        self.metrics = metrics
        self.chunk_plan = chunks or ChunkPlan()
        self.recent = recent
        # Resolves requests that may choose their voice by more than `voice` (vLLM-Omni's fields).
        self.request_voices = request_voices

    async def plan_request(self, request: SpeechRequest, endpoint: str, *, per_sentence: bool = False) -> SpeechPlan:
        """Validate an OpenAI-shaped speech request and turn it into a plan."""
        voice, fmt = await self.prepare(request)
        return self.plan(options_of(request, request.input), voice, fmt, endpoint, per_sentence=per_sentence)

    async def prepare(self, request: VoiceFields) -> tuple[ResolvedVoice, FormatSpec]:
        """Check a request's model and format and resolve its voice (400/404 when unknown).
        A request naming the design model speaks the voice its instructions describe."""
        from server.speech.design import resolve_design  # design builds on this module

        designed = resolve_design(request, self.models.design_ids)
        if request.model is not None and designed is None:
            self.models.require(request.model)
        fmt = resolve_format(request.response_format)
        if designed is not None:
            return designed, fmt
        if self.request_voices is not None:
            return await self.request_voices.for_request(request), fmt
        return await self.voices.resolve(request.voice_name), fmt

    def token_cap_for(self, requested: int | None) -> int:
        """The request's cap on frames per generated piece: MAX_NEW_TOKENS unless it asks for less."""
        if requested is None:
            return self.token_cap
        if requested > self.token_cap:
            raise invalid_request(
                f"max_new_tokens must be at most {self.token_cap} (the server's MAX_NEW_TOKENS)",
                param="max_new_tokens",
            )
        return requested

    def plan(
        self,
        options: SpeechOptions,
        voice: ResolvedVoice,
        fmt: FormatSpec,
        endpoint: str,
        *,
        per_sentence: bool = False,
        interactive: bool = False,
    ) -> SpeechPlan:
        """A plan for any voice; every field is validated here, before audio is produced.
        `per_sentence` makes each sentence its own segment (the sentence stream's contract);
        a speed change does too, since time-stretching needs whole phrases."""
        seed = options.seed if options.seed is not None else draw_seed()  # any output can be reproduced
        job = SynthesisJob(
            slot=voice.slot,
            segments=split_pieces(options.input, per_sentence=per_sentence or options.speed != 1.0),
            language=resolve_language(options.language, options.input),
            token_cap=self.token_cap_for(options.max_new_tokens),
            speaker=voice.speaker,
            clone=voice.clone,
            instruct=options.instructions or None,
            seed=seed,
            sampling=options.sampling,
            chunks=self._chunk_plan(options.first_chunk_frames),
            interactive=interactive,
        )
        return SpeechPlan(
            job=job,
            format=fmt,
            speed=options.speed,
            endpoint=endpoint,
            voice_label=voice.label,
            chars=len(options.input),
            instructions_given=bool(options.instructions),
            sample_rate=options.sample_rate,
            gain=options.gain,
            seed_sent=options.seed is not None,
        )

    def _chunk_plan(self, first_frames: int | None) -> ChunkPlan:
        if first_frames is None:
            return self.chunk_plan
        return replace(self.chunk_plan, first_frames=first_frames)

    async def chunks(
        self, plan: SpeechPlan, stats: SpeechStats, on_segment: SegmentListener | None = None
    ) -> AsyncGenerator[np.ndarray, None]:
        """The job's audio as the engine hands it over, chunk by chunk (a few frames each).
        With a speed change, a segment's chunks are gathered and stretched as one phrase.
        `on_segment` hears of each segment once its audio is complete (before its last chunk
        is yielded); without it nothing is gathered at normal speed."""
        gathered: list[np.ndarray] = []
        delivered = 0
        async with contextlib.aclosing(self._engine_chunks(plan, stats)) as chunks:
            async for chunk in chunks:
                if plan.speed == 1.0:
                    if on_segment is not None:
                        gathered.append(chunk.pcm)
                        delivered += chunk.pcm.shape[0]
                        if chunk.segment_end:
                            # Streamed audio keeps the guarded tail it already sent: the aligner
                            # hears what the client heard.
                            on_segment(SegmentAudio(chunk.segment, np.concatenate(gathered), delivered))
                            gathered.clear()
                            delivered = 0
                    if chunk.pcm.size:
                        yield chunk.pcm
                    continue
                gathered.append(chunk.pcm)
                if chunk.segment_end:
                    phrase = _trimmed(np.concatenate(gathered), chunk.trim_samples)
                    gathered.clear()
                    stretched = await self._stretch(phrase, plan.speed, stats)
                    if on_segment is not None:
                        on_segment(SegmentAudio(chunk.segment, phrase, stretched.shape[0]))
                    yield stretched

    async def sentences(
        self, plan: SpeechPlan, stats: SpeechStats, on_segment: SegmentListener | None = None
    ) -> AsyncGenerator[np.ndarray, None]:
        """The job's audio one segment at a time (a sentence each in a per-sentence plan),
        with a guarded tail cut whole (a stream can only leave out what it has not sent)."""
        gathered: list[np.ndarray] = []
        async with contextlib.aclosing(self._engine_chunks(plan, stats)) as chunks:
            async for chunk in chunks:
                gathered.append(chunk.pcm)
                if chunk.segment_end:
                    natural = _trimmed(np.concatenate(gathered), chunk.trim_samples)
                    gathered.clear()
                    phrase = natural if plan.speed == 1.0 else await self._stretch(natural, plan.speed, stats)
                    if on_segment is not None:
                        on_segment(SegmentAudio(chunk.segment, natural, phrase.shape[0]))
                    yield phrase

    @staticmethod
    async def _stretch(phrase: np.ndarray, speed: float, stats: SpeechStats) -> np.ndarray:
        started = time.perf_counter()
        stretched = await asyncio.to_thread(change_speed, phrase, speed, SAMPLE_RATE)
        stats.encode_ms += (time.perf_counter() - started) * 1000
        return stretched

    async def _engine_chunks(self, plan: SpeechPlan, stats: SpeechStats) -> AsyncGenerator[AudioChunk, None]:
        slot = self.engine.slots[plan.job.slot]
        # Closed at once when left early, so the engine's job (and its queue slot) ends now,
        # not whenever the garbage collector gets to it.
        async with contextlib.aclosing(self.engine.synthesize(plan.job)) as synthesized:
            async for chunk in synthesized:
                if stats.first_chunk_ms is None and plan.instructions_given:
                    backend = slot.backend
                    stats.instructions_ignored = backend is not None and not backend.honours_instruct
                stats.add_chunk(chunk)
                if chunk.stats is not None:
                    segment_log.debug(
                        "segment synthesised",
                        extra={
                            "request_id": request_id_var.get(),
                            "segment": chunk.segment,
                            "segments": len(plan.job.segments),
                            "inference_ms": round(chunk.stats.generate_ms, 1),
                            "output_frames": chunk.stats.output_frames,
                            "batch_size": chunk.stats.batch_max,
                            "finish_reason": chunk.stats.finish_reason.value,
                            "trimmed_frames": chunk.stats.trimmed_frames,
                        },
                    )
                if plan.gain != 1.0 and chunk.pcm.size:
                    # Constant, so streamed and whole responses stay the same audio; the
                    # encoders clip what a positive gain pushes past full scale.
                    chunk = dataclasses.replace(chunk, pcm=(chunk.pcm * np.float32(plan.gain)).astype(np.float32))
                yield chunk

    async def collect(
        self, plan: SpeechPlan, stats: SpeechStats, on_segment: SegmentListener | None = None
    ) -> np.ndarray:
        """The whole audio: the segments in order, each with any guarded tail cut."""
        parts = [pcm async for pcm in self.sentences(plan, stats, on_segment) if pcm.size]
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
            "first_chunk_ms": None if stats.first_chunk_ms is None else round(stats.first_chunk_ms, 1),
            "first_chunk_frames": stats.first_chunk_frames,
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
        if error is not None:
            fields["error"] = error
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
                total_ms=(time.perf_counter() - stats.started) * 1000,
                ttfa_ms=stats.ttfa_ms,
                audio_seconds=stats.samples / SAMPLE_RATE,
                chars=plan.chars,
                finish_reason=str(fields["finish_reason"]),
            )
