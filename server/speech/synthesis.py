"""The speech service: the one entry every front door uses. It plans a request
(planning.py), runs the plan on the engine and hands back its audio, whole or as a stream,
and writes the request's record when it ends (request_log.py). Streaming and whole responses
share this one path, so they cannot drift apart.

Running is this module's own job: the engine's chunks come back with the request's gain
applied, and with a speed change each segment is gathered and time-stretched as one phrase.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

import numpy as np

from server.audio.dsp import change_speed
from server.engine.jobs import SAMPLE_RATE, AudioChunk, ChunkPlan
from server.engine.scheduler import Engine
from server.logs import request_id_var
from server.metrics import Metrics
from server.speech.catalog import ModelCatalog
from server.speech.planning import SpeechPlan, SpeechPlanner
from server.speech.pronunciation_file import Pronunciations
from server.speech.recent import RecentRequests
from server.speech.request_log import RequestLog, SpeechStats
from server.speech.scripted import PlanPart
from server.speech.voice_resolution import RequestVoices

segment_log = logging.getLogger("qwen3-tts.segments")


@dataclass(frozen=True)
class SegmentAudio:
    """One segment's audio, complete: what word timing needs of it."""

    index: int
    natural: np.ndarray  # float32 at 24 kHz, before any speed change (what the aligner hears)
    delivered_samples: int  # its length as the client gets it (after the speed change), at 24 kHz


SegmentListener = Callable[[SegmentAudio], None]


def silence(samples: int) -> np.ndarray:
    """A pause: exact zeros, at 24 kHz."""
    return np.zeros(samples, dtype=np.float32)


def _trimmed(phrase: np.ndarray, trim_samples: int) -> np.ndarray:
    """A whole phrase without the tail a guard cut (see GuardBank)."""
    return phrase[: max(phrase.shape[0] - trim_samples, 0)] if trim_samples else phrase


class SpeechService:
    """Plans, runs and records speech requests around one engine. `voices` is the chain of
    voice resolvers the app composed (a request's voice is whatever it answers)."""

    def __init__(
        self,
        engine: Engine,
        models: ModelCatalog,
        token_cap: int,
        voices: RequestVoices,
        metrics: Metrics | None = None,
        chunks: ChunkPlan | None = None,
        recent: RecentRequests | None = None,
        pronunciations: Pronunciations | None = None,
    ) -> None:
        self.engine = engine
        self.models = models
        self.planner = SpeechPlanner(models, voices, token_cap, chunks, pronunciations)
        self.request_log = RequestLog(token_cap, metrics, recent)
        # Planning and the request's record are their own objects' work (their docstrings say
        # what each does); the front doors reach them through the service, their one entry.
        self.plan_request = self.planner.plan_request
        self.prepare = self.planner.prepare
        self.token_cap_for = self.planner.token_cap_for
        self.plan = self.planner.plan
        self.script_voices = self.planner.script_voices
        self.log_request = self.request_log.write

    # Running what was planned.

    async def chunks(
        self, plan: SpeechPlan, stats: SpeechStats, on_segment: SegmentListener | None = None
    ) -> AsyncGenerator[np.ndarray, None]:
        """The job's audio as the engine hands it over, chunk by chunk (a few frames each).
        With a speed change, a segment's chunks are gathered and stretched as one phrase.
        A script's pauses come as chunks of exact zeros before the segment they precede (and
        after the last). `on_segment` hears of each segment once its audio is complete
        (before its last chunk is yielded); without it nothing is gathered at normal speed."""
        gathered: list[np.ndarray] = []
        delivered = 0
        current = -1
        async with contextlib.aclosing(self._engine_chunks(plan, stats)) as chunks:
            async for chunk in chunks:
                if chunk.segment != current:
                    current = chunk.segment
                    if plan.pause_before(current):
                        yield silence(plan.pause_before(current))
                speed = plan.part_of(chunk.segment).speed
                if speed == 1.0:
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
                    stretched = await self._stretch(phrase, speed, stats)
                    if on_segment is not None:
                        on_segment(SegmentAudio(chunk.segment, phrase, stretched.shape[0]))
                    yield stretched
        if plan.pause_before(len(plan.segments)):
            yield silence(plan.pause_before(len(plan.segments)))

    async def sentences(
        self, plan: SpeechPlan, stats: SpeechStats, on_segment: SegmentListener | None = None
    ) -> AsyncGenerator[np.ndarray, None]:
        """The job's audio one segment at a time (a sentence each in a per-sentence plan),
        with a guarded tail cut whole (a stream can only leave out what it has not sent).
        A script's pause goes at the head of the segment it precedes, the trailing one at the
        end of the last, so the pieces are the segments still."""
        gathered: list[np.ndarray] = []
        last = len(plan.segments) - 1
        async with contextlib.aclosing(self._engine_chunks(plan, stats)) as chunks:
            async for chunk in chunks:
                gathered.append(chunk.pcm)
                if chunk.segment_end:
                    natural = _trimmed(np.concatenate(gathered), chunk.trim_samples)
                    gathered.clear()
                    speed = plan.part_of(chunk.segment).speed
                    phrase = natural if speed == 1.0 else await self._stretch(natural, speed, stats)
                    if on_segment is not None:
                        on_segment(SegmentAudio(chunk.segment, natural, phrase.shape[0]))
                    before = plan.pause_before(chunk.segment)
                    after = plan.pause_before(last + 1) if chunk.segment == last else 0
                    if before or after:
                        phrase = np.concatenate([silence(before), phrase, silence(after)])
                    yield phrase
        if last < 0 and plan.pause_before(0):
            yield silence(plan.pause_before(0))  # pauses alone

    @staticmethod
    async def _stretch(phrase: np.ndarray, speed: float, stats: SpeechStats) -> np.ndarray:
        started = time.perf_counter()
        stretched = await asyncio.to_thread(change_speed, phrase, speed, SAMPLE_RATE)
        stats.encode_ms += (time.perf_counter() - started) * 1000
        return stretched

    async def _engine_chunks(self, plan: SpeechPlan, stats: SpeechStats) -> AsyncGenerator[AudioChunk, None]:
        """Each part's job in turn, its chunks numbered across the plan and its gain applied."""
        for part in plan.parts:
            if not part.job.segments:
                continue  # pauses alone
            async with contextlib.aclosing(self._part_chunks(plan, part, stats)) as chunks:
                async for chunk in chunks:
                    yield chunk

    async def _part_chunks(
        self, plan: SpeechPlan, part: PlanPart, stats: SpeechStats
    ) -> AsyncGenerator[AudioChunk, None]:
        slot = self.engine.slots[part.job.slot]
        # Closed at once when left early, so the engine's job (and its queue slot) ends now,
        # not whenever the garbage collector gets to it.
        async with contextlib.aclosing(self.engine.synthesize(part.job)) as synthesized:
            async for chunk in synthesized:
                if stats.first_chunk_ms is None and plan.instructions_given:
                    backend = slot.backend
                    stats.instructions_ignored = backend is not None and not backend.honours_instruct
                stats.add_chunk(chunk)
                if part.first:
                    chunk = dataclasses.replace(chunk, segment=chunk.segment + part.first)
                if chunk.stats is not None:
                    segment_log.debug(
                        "segment synthesised",
                        extra={
                            "request_id": request_id_var.get(),
                            "segment": chunk.segment,
                            "segments": len(plan.segments),
                            "inference_ms": round(chunk.stats.generate_ms, 1),
                            "output_frames": chunk.stats.output_frames,
                            "batch_size": chunk.stats.batch_max,
                            "finish_reason": chunk.stats.finish_reason.value,
                            "trimmed_frames": chunk.stats.trimmed_frames,
                        },
                    )
                if part.gain != 1.0 and chunk.pcm.size:
                    # Constant, so streamed and whole responses stay the same audio; the
                    # encoders clip what a positive gain pushes past full scale.
                    chunk = dataclasses.replace(chunk, pcm=(chunk.pcm * np.float32(part.gain)).astype(np.float32))
                yield chunk

    async def collect(
        self, plan: SpeechPlan, stats: SpeechStats, on_segment: SegmentListener | None = None
    ) -> np.ndarray:
        """The whole audio: the segments in order, each with any guarded tail cut."""
        parts = [pcm async for pcm in self.sentences(plan, stats, on_segment) if pcm.size]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
