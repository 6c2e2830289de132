"""The inference thread: one thread that owns the models and runs the frame loop.

Between any two frames it: runs the plain calls queued for it (loads, unloads, clone prompts);
for each model slot in turn (so two loaded models share the thread fairly) retires sequences
whose job was cancelled or passed its deadline, admits waiting segments into free rows
(prefill), runs one decode step for every active sequence together, and hands out the audio
chunks that are due. A segment that ends frees its row at once and its job's next segment
queues ahead of new bulk jobs (only interactive ones go first), so a stream keeps flowing;
a newcomer never waits for another sequence to finish unless every row is taken.

Admission is bounded per step (a prompt-token budget), so a burst of newcomers cannot stall
the running streams for more than about one prefill of that size.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from server.engine.device.runtime import runtime_for
from server.engine.errors import EngineStoppedError, JobTimeoutError, ModelLoadError, SynthesisError
from server.engine.jobs import SlotName, SynthesisJob
from server.engine.sequence import END, JobStream, Sequence
from server.engine.slots.models import ModelSlot

log = logging.getLogger("qwen3-tts.engine")

# Prompt positions prefilled per step while other sequences are running; the first newcomer
# is always admitted. On the dev checkpoints a prompt of this size costs well under a frame.
PREFILL_TOKENS_PER_STEP = 1024
# How long the thread sleeps when it has nothing to do before looking at deadlines again.
IDLE_WAIT_SECONDS = 0.25

# Admission order: a live conversation first, then a running job's next segment (so its
# audio keeps flowing), then new bulk jobs, then background work (a long-audio job's
# segments, which nobody is listening to yet); arrival order within each.
INTERACTIVE, CONTINUATION, BULK, BACKGROUND = 0, 1, 2, 3


def _priority(job: SynthesisJob, continuing: bool) -> int:
    if job.interactive:
        return INTERACTIVE
    if job.background:
        return BACKGROUND
    return CONTINUATION if continuing else BULK


def as_synthesis_error(exc: Exception) -> SynthesisError:
    """What a stream is told when its segment could not start."""
    return exc if isinstance(exc, SynthesisError) else SynthesisError(f"{type(exc).__name__}: {exc}")


@dataclass
class _Call:
    fn: Callable[[], Any]
    future: concurrent.futures.Future[Any] = field(default_factory=concurrent.futures.Future)


class InferenceLoop:
    def __init__(self, slots: dict[SlotName, ModelSlot]) -> None:
        self.slots = slots
        self._calls: deque[_Call] = deque()
        self._waiting: dict[SlotName, list[tuple[int, int, JobStream]]] = {name: [] for name in slots}
        self._order = itertools.count()
        self._turn = 0
        self._wakeup = threading.Condition()
        self._closed = False
        self.steps = 0  # decode steps run, for observers
        self.longest_stall_ms = 0.0  # the longest admission (prefills) while other sequences waited
        self.unit_started: float | None = None  # monotonic start of the unit of work running now
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
        self._thread.start()

    # ---- any thread --------------------------------------------------------------------

    def call(self, fn: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        call = _Call(fn)
        with self._wakeup:
            if self._closed:
                raise RuntimeError("inference loop is closed")
            self._calls.append(call)
            self._wakeup.notify()
        return call.future

    def submit(self, stream: JobStream) -> None:
        """Queue a job's first segment."""
        self._enqueue(stream, _priority(stream.job, continuing=False))

    def wake(self) -> None:
        with self._wakeup:
            self._wakeup.notify()

    def waiting(self, name: SlotName) -> int:
        return len(self._waiting[name])

    def active(self, name: SlotName) -> int:
        # Read from the event loop: a backend being unloaded may already have let go of its batch.
        batch = getattr(self.slots[name].backend, "batch", None)
        return len(batch.rows) if batch is not None else 0

    def unload(self, slot: ModelSlot, reason: str) -> bool:
        """Unload a slot's model (inference thread only); a sequence still on it is failed."""
        backend = slot.backend
        if backend is not None:
            backend.batch.fail(EngineStoppedError())
        return slot.unload(reason)

    def close(self) -> None:
        """Finish the current step, fail what waits, stop the thread."""
        with self._wakeup:
            self._closed = True
            while self._calls:
                self._calls.popleft().future.cancel()
            self._wakeup.notify()
        self._thread.join()

    def _enqueue(self, stream: JobStream, priority: int) -> None:
        with self._wakeup:
            heapq.heappush(self._waiting[stream.job.slot], (priority, next(self._order), stream))
            self._wakeup.notify()

    # ---- the inference thread ----------------------------------------------------------

    def _run(self) -> None:
        with torch.inference_mode(), contextlib.ExitStack() as bound:
            for device in {slot.device for slot in self.slots.values()}:
                bound.enter_context(runtime_for(device).bound())  # this thread runs their device work
            while True:
                calls = self._next_calls()
                if calls is None:
                    break
                for call in calls:
                    self.unit_started = time.monotonic()  # the stall watchdog reads it
                    self._run_call(call)
                names = list(self.slots)
                self._turn = (self._turn + 1) % len(names)
                for name in names[self._turn :] + names[: self._turn]:
                    self.unit_started = time.monotonic()
                    self._tick(name)
                self.unit_started = None
        self._fail_waiting(EngineStoppedError())

    def _next_calls(self) -> list[_Call] | None:
        """The calls to run now, after waiting while there is nothing to do; None to stop."""
        with self._wakeup:
            while not self._calls and not self._has_work():
                if self._closed:
                    return None
                self._wakeup.wait(IDLE_WAIT_SECONDS)
                if not self._calls and not self._has_work():
                    self._expire_waiting()
            calls = list(self._calls)
            self._calls.clear()
            return calls

    def _has_work(self) -> bool:
        """Whether a tick would do something: a sequence to step, emit or retire, or a waiting
        segment with a free row (or a model to load for it)."""
        for name, slot in self.slots.items():
            backend = slot.backend
            rows = backend.batch.rows if backend is not None else []
            if any(s.finished or not s.stream.backlogged or self._gone(s.stream) for s in rows):
                return True
            if self._waiting[name] and (backend is None or backend.batch.free > 0):
                return True
        return False

    @staticmethod
    def _gone(stream: JobStream) -> bool:
        return stream.cancelled.is_set() or time.monotonic() > stream.deadline

    @staticmethod
    def _run_call(call: _Call) -> None:
        if not call.future.set_running_or_notify_cancel():
            return
        try:
            call.future.set_result(call.fn())
        except BaseException as exc:
            call.future.set_exception(exc)

    def _tick(self, name: SlotName) -> None:
        slot = self.slots[name]
        self._retire(slot)
        self._admit(name, slot)
        backend = slot.backend
        if backend is None or not backend.batch.rows:
            return
        batch = backend.batch
        try:
            ran = batch.step()
            if ran:
                self.steps += 1
                slot.touch()
            batch.emit(self._segment_ended)
        except Exception as exc:  # a model or codec failure fails the sequences of this batch
            log.exception("decode step failed", extra={"slot": name})
            batch.fail(SynthesisError(f"{type(exc).__name__}: {exc}"))

    def _segment_ended(self, sequence: Sequence) -> None:
        stream = sequence.stream
        stream.segment_ready_at = time.perf_counter()
        if stream.next_segment < len(stream.job.segments) and not self._gone(stream):
            self._enqueue(stream, _priority(stream.job, continuing=True))
        else:
            stream.deliver(END)

    def _retire(self, slot: ModelSlot) -> None:
        """Free the rows of cancelled and timed-out jobs (at most one frame after it happened)."""
        backend = slot.backend
        if backend is None:
            return
        for sequence in list(backend.batch.rows):
            stream = sequence.stream
            if stream.cancelled.is_set():
                backend.batch.remove(sequence)
                log.debug(
                    "segment cancelled",
                    extra={
                        "request_id": stream.request_id,
                        "segment": sequence.segment,
                        "frames_generated": stream.frames_generated,
                        "frames_after_cancel": stream.frames_generated - (stream.frames_at_cancel or 0),
                        "chunks_not_taken": stream.delivered - stream.taken,
                    },
                )
            elif time.monotonic() > stream.deadline:
                backend.batch.remove(sequence)
                stream.deliver(JobTimeoutError(stream.job_timeout))

    def _admit(self, name: SlotName, slot: ModelSlot) -> None:
        backend = slot.backend
        others_running = backend is not None and any(not s.finished for s in backend.batch.rows)
        started = time.perf_counter()
        self._admit_waiting(name, slot)
        if others_running:
            self.longest_stall_ms = max(self.longest_stall_ms, (time.perf_counter() - started) * 1000)

    def _admit_waiting(self, name: SlotName, slot: ModelSlot) -> None:
        """Join waiting segments while rows are free and the tick's prompt budget lasts, then
        prefill them (together, on a GPU) into their rows."""
        self._join_waiting(name, slot)
        backend = slot.backend
        if backend is None or not backend.batch.joining:
            return
        batch = backend.batch
        joining = list(batch.joining)
        try:
            started = batch.admit()
        except Exception as exc:  # the prefill failed: none of them got a row
            log.exception("prefill failed", extra={"slot": name})
            error = as_synthesis_error(exc)
            for sequence in joining:
                sequence.stream.deliver(error)
            return
        slot.touch()
        for sequence in started:
            log.debug(
                "segment started",
                extra={
                    "request_id": sequence.stream.request_id,
                    "slot": name,
                    "segment": sequence.segment,
                    "prompt_tokens": sequence.prompt.length,
                    "max_new_tokens": sequence.budget,
                    "batch_size": len(batch.rows),
                },
            )

    def _join_waiting(self, name: SlotName, slot: ModelSlot) -> None:
        waiting = self._waiting[name]
        budget = PREFILL_TOKENS_PER_STEP
        while True:
            with self._wakeup:
                if not waiting:
                    return
                backend = slot.backend
                if backend is not None and backend.batch.free == 0:
                    return
                _, _, stream = heapq.heappop(waiting)
            if self._gone(stream):
                self._drop(stream)
                continue
            started = time.perf_counter()
            try:
                backend = slot.ensure_loaded()
            except ModelLoadError as exc:
                stream.deliver(exc)
                continue
            load_ms = (time.perf_counter() - started) * 1000
            batch = backend.batch
            running = bool(batch.rows) or bool(batch.joining)
            try:
                sequence = batch.join(stream, load_ms, backend.row_sampling(stream.job.sampling))
            except Exception as exc:
                stream.deliver(as_synthesis_error(exc))
                continue
            slot.touch()
            budget -= sequence.prompt.length
            if running and budget <= 0:
                return

    def _drop(self, stream: JobStream) -> None:
        if not stream.cancelled.is_set():
            stream.deliver(JobTimeoutError(stream.job_timeout))

    def _expire_waiting(self) -> None:
        """Fail jobs whose deadline passed while they waited (called with the lock held)."""
        for name, waiting in self._waiting.items():
            expired = [entry for entry in waiting if self._gone(entry[2])]
            if expired:
                self._waiting[name] = [entry for entry in waiting if not self._gone(entry[2])]
                heapq.heapify(self._waiting[name])
                for _, _, stream in expired:
                    self._drop(stream)

    def _fail_waiting(self, error: BaseException) -> None:
        with self._wakeup:
            for waiting in self._waiting.values():
                for _, _, stream in waiting:
                    stream.deliver(error)
                waiting.clear()
