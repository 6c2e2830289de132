"""The engine: a bounded queue in front of ONE inference thread that owns the models.

A job's segments are submitted one at a time, and segment N+1 is submitted as soon as
segment N comes back, so it is synthesised while N is being encoded and sent. Segments of
concurrent requests that wait together share one batched model call (up to
MAX_BATCH_SIZE); everything else runs in arrival order. A job whose consumer has gone
stops between segments (and, through the frame hook, between frames). Every admitted job
holds one unit of queue depth until its consumer finishes, on every path.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from server.engine.errors import EngineStoppedError, JobCancelledError, JobTimeoutError, QueueFullError
from server.engine.jobs import SegmentAudio, SlotName, SynthesisJob
from server.engine.models import ModelSlot
from server.engine.qwen import QwenBackend, SpeechInput, gpu_memory, import_model_package
from server.engine.worker import InferenceWorker
from server.text.budget import max_new_tokens_for

log = logging.getLogger("qwen3-tts.engine")

T = TypeVar("T")


@dataclass(frozen=True)
class EngineLimits:
    max_queue_depth: int
    request_timeout: float
    idle_timeout: float
    max_batch_size: int = 1


class _Ticket:
    """One admitted job: its slot, its cancel flag, its deadline."""

    def __init__(self, slot: ModelSlot, deadline: float) -> None:
        self.slot = slot
        self.deadline = deadline
        self.cancelled = threading.Event()


@dataclass(frozen=True)
class _SegmentWork:
    """One segment of one job, as queued for the inference thread."""

    job: SynthesisJob
    index: int
    ticket: _Ticket
    submitted: float

    @property
    def seed(self) -> int | None:
        return None if self.job.seed is None else self.job.seed + self.index


def _batchable(first: _SegmentWork, other: _SegmentWork) -> bool:
    """Segments share a call when they run on the preset-voice model and neither asked for a
    seed (a batch shares one random stream, so seeded output would depend on its company) and
    their sampling parameters are equal.
    Cloned voices run alone: their prompts differ in kind (ICL or speaker embedding)."""
    return (
        first.ticket.slot is other.ticket.slot
        and first.job.slot == "custom_voice"
        and first.seed is None
        and other.seed is None
        and first.job.sampling == other.job.sampling
        and not other.ticket.cancelled.is_set()
    )


class Engine:
    # What one streamed chunk of audio is: a whole sentence, with today's generate calls.
    stream_unit = "sentence"

    def __init__(self, slots: dict[SlotName, ModelSlot], limits: EngineLimits) -> None:
        self.slots = slots
        self.limits = limits
        self._worker: InferenceWorker[_SegmentWork, SegmentAudio] = InferenceWorker(
            self._synthesize_batch, _batchable, limits.max_batch_size, urgent=lambda work: work.job.interactive
        )
        self._depth = 0
        self._accepting = True
        self._idle_task: asyncio.Task[None] | None = None
        self._drained = asyncio.Event()
        self._drained.set()

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self, preload: tuple[SlotName, ...] = ()) -> None:
        if self.limits.idle_timeout > 0:
            self._idle_task = asyncio.create_task(self._unload_idle_models(), name="idle-unload")
        # Importing the model package costs ~10 s of CPU; do it now, in the background on the
        # inference thread, so the first request pays only for loading weights. No model memory
        # is taken until a model loads.
        self._worker.call(import_model_package)
        for name in preload:
            slot = self.slots[name]
            with contextlib.suppress(Exception):  # a failed preload is kept in last_error; requests retry
                await self._run_on_thread(slot.ensure_loaded)

    async def stop(self, grace: float) -> None:
        """Refuse new jobs, give running ones `grace` seconds, then unload every model."""
        self._accepting = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), grace)
        if self._idle_task is not None:
            self._idle_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._idle_task
        for slot in self.slots.values():
            await self._run_on_thread(slot.unload, "shutdown")
        self._worker.close()

    # ---- state -----------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Jobs admitted and not finished: running, streaming or waiting."""
        return self._depth

    @property
    def accepting(self) -> bool:
        return self._accepting

    def health(self) -> dict[str, Any]:
        return {
            "queue_depth": self._depth,
            "max_queue_depth": self.limits.max_queue_depth,
            "max_batch_size": self.limits.max_batch_size,
            "models": {name: slot.describe() for name, slot in self.slots.items()},
            "gpu": gpu_memory(),
        }

    # ---- work ------------------------------------------------------------------------

    async def synthesize(self, job: SynthesisJob) -> AsyncIterator[SegmentAudio]:
        """Yield each segment's audio in order. Raises QueueFullError at once when the queue
        is full, ModelLoadError when the model cannot load, JobTimeoutError past the deadline."""
        ticket = self._admit(job.slot)
        pending: asyncio.Future[SegmentAudio] | None = None
        try:
            pending = self._submit_segment(job, 0, ticket)
            while pending is not None:
                segment = await self._await_deadline(pending, ticket)
                following = segment.index + 1
                pending = self._submit_segment(job, following, ticket) if following < len(job.segments) else None
                yield segment
        finally:
            ticket.cancelled.set()
            if pending is not None:
                # A queued segment is dropped; a running one stops at its next frame.
                pending.cancel()
            self._release(ticket)

    async def run_with_model(self, slot_name: SlotName, work: Callable[[QwenBackend], T]) -> T:
        """Run one call against a slot's model on the inference thread (e.g. computing a
        clone prompt). It takes a place in the queue like a job and obeys the same timeout."""
        ticket = self._admit(slot_name)
        try:

            def call() -> T:
                if ticket.cancelled.is_set():
                    raise JobCancelledError("job cancelled before it started")
                result = work(ticket.slot.ensure_loaded())
                ticket.slot.touch()
                return result

            return await self._await_deadline(self._run_on_thread(call), ticket)
        finally:
            ticket.cancelled.set()
            self._release(ticket)

    # ---- internals -------------------------------------------------------------------

    def _admit(self, slot_name: SlotName) -> _Ticket:
        if not self._accepting:
            raise EngineStoppedError()
        if self._depth >= self.limits.max_queue_depth:
            raise QueueFullError(self._depth)
        slot = self.slots[slot_name]
        self._depth += 1
        self._drained.clear()
        slot.in_flight += 1
        slot.touch()
        loop = asyncio.get_running_loop()
        return _Ticket(slot, loop.time() + self.limits.request_timeout)

    def _release(self, ticket: _Ticket) -> None:
        ticket.slot.in_flight -= 1
        ticket.slot.touch()
        self._depth -= 1
        if self._depth == 0:
            self._drained.set()

    def _run_on_thread(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        return asyncio.wrap_future(self._worker.call(functools.partial(fn, *args)))

    def _submit_segment(self, job: SynthesisJob, index: int, ticket: _Ticket) -> asyncio.Future[SegmentAudio]:
        return asyncio.wrap_future(self._worker.submit(_SegmentWork(job, index, ticket, time.perf_counter())))

    async def _await_deadline(self, future: asyncio.Future[T], ticket: _Ticket) -> T:
        remaining = ticket.deadline - asyncio.get_running_loop().time()
        try:
            return await asyncio.wait_for(asyncio.shield(future), max(remaining, 0.0))
        except TimeoutError:
            ticket.cancelled.set()  # the frame hook stops the running segment at its next frame
            future.cancel()
            raise JobTimeoutError(self.limits.request_timeout) from None

    @staticmethod
    def _synthesize_batch(works: Sequence[_SegmentWork]) -> list[SegmentAudio | BaseException]:
        """Runs on the inference thread: one model call for one or more segments."""
        started = time.perf_counter()
        results: list[SegmentAudio | BaseException] = [JobCancelledError("job cancelled")] * len(works)
        live = [i for i, work in enumerate(works) if not work.ticket.cancelled.is_set()]
        if not live:
            return results
        slot = works[live[0]].ticket.slot
        was_loaded = slot.backend is not None
        backend = slot.ensure_loaded()  # a load error fails every segment of the batch
        load_ms = 0.0 if was_loaded else (time.perf_counter() - started) * 1000
        budgets = {i: max_new_tokens_for(works[i].job.segments[works[i].index], works[i].job.token_cap) for i in live}
        inputs = [
            SpeechInput(
                text=works[i].job.segments[works[i].index],
                language=works[i].job.language,
                speaker=works[i].job.speaker,
                instruct=works[i].job.instruct,
                clone=works[i].job.clone,
            )
            for i in live
        ]
        generate_started = time.perf_counter()
        outputs = backend.generate(
            inputs,
            max_new_tokens=max(budgets.values()),
            seed=works[live[0]].seed if len(live) == 1 else None,
            sampling=works[live[0]].job.sampling,  # batched segments share their sampling
            # A shared call stops only when every job in it has been cancelled.
            should_stop=lambda: all(works[i].ticket.cancelled.is_set() for i in live),
            on_frame=slot.touch,
        )
        slot.touch()
        inference_ms = (time.perf_counter() - generate_started) * 1000
        for i, out in zip(live, outputs, strict=True):
            results[i] = SegmentAudio(
                pcm=out.pcm,
                index=works[i].index,
                input_tokens=out.input_tokens,
                output_frames=out.output_frames,
                max_new_tokens=budgets[i],
                queued_ms=(started - works[i].submitted) * 1000,
                inference_ms=inference_ms,
                load_ms=load_ms,
                batch_size=len(live),
            )
        return results

    async def _unload_idle_models(self) -> None:
        period = min(1.0, self.limits.idle_timeout / 4)
        while True:
            await asyncio.sleep(period)
            for slot in self.slots.values():
                if slot.is_idle(self.limits.idle_timeout):
                    await self._run_on_thread(self._unload_if_still_idle, slot)

    def _unload_if_still_idle(self, slot: ModelSlot) -> None:
        # Re-checked on the inference thread: a job may have been admitted since the check.
        if slot.is_idle(self.limits.idle_timeout):
            slot.unload(f"idle for {self.limits.idle_timeout:g} s")
