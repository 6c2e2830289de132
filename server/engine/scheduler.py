"""The engine's async side: admission (queue depth, 503), deadlines, and the stream of audio
chunks each job yields, in front of ONE inference thread that owns the models and runs the
frame loop (server/engine/worker.py).

A job holds one unit of queue depth from admission until its consumer finishes, on every
path; a consumer that leaves (or passes its deadline) cancels the job, and the inference
thread frees its row at the next frame. The async side never touches a tensor.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from server.engine.errors import (
    EngineStalledError,
    EngineStoppedError,
    JobCancelledError,
    JobTimeoutError,
    QueueFullError,
)
from server.engine.jobs import AudioChunk, SlotName, SynthesisJob
from server.engine.sequence import JobStream, StreamEnd
from server.engine.slots.models import ModelSlot
from server.engine.slots.qwen import QwenBackend, gpu_memory, import_model_package
from server.engine.watchdog import StallWatchdog
from server.engine.worker import InferenceLoop
from server.logs import request_id_var

log = logging.getLogger("qwen3-tts.engine")

T = TypeVar("T")

# Chunks a stream may hold ready beyond what its consumer took before its sequence pauses.
MAX_CHUNKS_AHEAD = 4


@dataclass(frozen=True)
class EngineLimits:
    max_queue_depth: int
    request_timeout: float
    idle_timeout: float
    max_batch_size: int = 8
    stall_timeout: float = 0.0  # ENGINE_STALL_TIMEOUT; 0: no watchdog
    stall_grace: float = 30.0  # ENGINE_STALL_GRACE


class _Ticket:
    """One admitted job: its slot, its cancel flag, its deadline."""

    def __init__(self, slot: ModelSlot, deadline: float) -> None:
        self.slot = slot
        self.deadline = deadline
        self.cancelled = threading.Event()


class Engine:
    # What one streamed item of audio is (reported by /v1/info): a few codec frames.
    stream_unit = "frames"

    def __init__(
        self, slots: dict[SlotName, ModelSlot], limits: EngineLimits, on_stall_exit: Callable[[], None] | None = None
    ) -> None:
        self.slots = slots
        self.limits = limits
        self._loop_thread = InferenceLoop(slots)
        self.watchdog = StallWatchdog(
            self._loop_thread, slots.values(), limits.stall_timeout, limits.stall_grace, on_stall_exit
        )
        self._watchdog_task: asyncio.Task[None] | None = None
        self._depth = 0
        self._accepting = True
        self._idle_task: asyncio.Task[None] | None = None
        self._drained = asyncio.Event()
        self._drained.set()
        self.loop: asyncio.AbstractEventLoop | None = None  # the event loop the engine serves, set at start
        self.idle_sweeps = 0  # passes of the idle unloader, so observers can wait for one to happen

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self, preload: tuple[SlotName, ...] = ()) -> None:
        self.loop = asyncio.get_running_loop()
        if self.limits.idle_timeout > 0:
            self._idle_task = asyncio.create_task(self._unload_idle_models(), name="idle-unload")
        if self.limits.stall_timeout > 0:
            self._watchdog_task = asyncio.create_task(self.watchdog.run(), name="stall-watchdog")
        # Importing the model package costs ~10 s of CPU; do it now, in the background on the
        # inference thread, so the first request pays only for loading weights. No model memory
        # is taken until a model loads.
        self._loop_thread.call(import_model_package)
        for name in preload:
            slot = self.slots[name]
            with contextlib.suppress(Exception):  # a failed preload is kept in last_error; requests retry
                await self._run_on_thread(slot.ensure_loaded)

    async def stop(self, grace: float) -> None:
        """Refuse new jobs, give running ones `grace` seconds, then unload every model."""
        self._accepting = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), grace)
        for task in (self._idle_task, self._watchdog_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for slot in self.slots.values():
            await self._run_on_thread(self._loop_thread.unload, slot, "shutdown")
        self._loop_thread.close()

    # ---- state -----------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Jobs admitted and not finished: running, streaming or waiting."""
        return self._depth

    @property
    def accepting(self) -> bool:
        return self._accepting

    @property
    def stalled(self) -> str | None:
        """Why the inference thread counts as stuck (the stall watchdog), or None."""
        return self.watchdog.stalled

    @property
    def steps(self) -> int:
        """Decode steps the inference thread has run."""
        return self._loop_thread.steps

    @property
    def longest_stall_ms(self) -> float:
        """The longest time running sequences waited while newcomers were prefilled."""
        return self._loop_thread.longest_stall_ms

    def health(self) -> dict[str, Any]:
        models = {}
        for name, slot in self.slots.items():
            models[name] = {
                **slot.describe(),
                "active_sequences": self._loop_thread.active(name),
                "waiting_segments": self._loop_thread.waiting(name),
            }
        return {
            "queue_depth": self._depth,
            "max_queue_depth": self.limits.max_queue_depth,
            "max_batch_size": self.limits.max_batch_size,
            # The longest time running streams waited while newcomers were prefilled.
            "longest_prefill_stall_ms": round(self._loop_thread.longest_stall_ms, 1),
            "models": models,
            "gpu": gpu_memory(),
        }

    # ---- work ------------------------------------------------------------------------

    async def synthesize(self, job: SynthesisJob) -> AsyncGenerator[AudioChunk, None]:
        """Yield the job's audio chunks in order. Raises QueueFullError at once when the queue
        is full, ModelLoadError when the model cannot load, JobTimeoutError past the deadline."""
        ticket = self._admit(job.slot)
        stream = JobStream(
            job, self.limits.request_timeout, asyncio.get_running_loop(), MAX_CHUNKS_AHEAD, request_id_var.get()
        )
        try:
            self._loop_thread.submit(stream)
            while True:
                item = await self._await_deadline(stream.next_item(), ticket)
                if isinstance(item, StreamEnd):
                    return
                if isinstance(item, BaseException):
                    raise item
                self._loop_thread.wake()  # its sequence may have paused, waiting for this
                yield item
        finally:
            # The inference thread frees the job's row at its next frame.
            stream.cancel()
            ticket.cancelled.set()
            self._loop_thread.wake()
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

    def call_on_thread(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Run `fn` on the inference thread between two frames, without taking a queue slot;
        callable from any thread. While it runs, no model work happens."""
        return self._loop_thread.call(fn)

    # ---- internals -------------------------------------------------------------------

    def _admit(self, slot_name: SlotName) -> _Ticket:
        if not self._accepting:
            raise EngineStoppedError()
        if self.stalled is not None:
            raise EngineStalledError(self.stalled)
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
        return asyncio.wrap_future(self.call_on_thread(functools.partial(fn, *args)))

    async def _await_deadline(self, awaitable: Awaitable[T], ticket: _Ticket) -> T:
        remaining = ticket.deadline - asyncio.get_running_loop().time()
        try:
            return await asyncio.wait_for(awaitable, max(remaining, 0.0))
        except TimeoutError:
            ticket.cancelled.set()
            raise JobTimeoutError(self.limits.request_timeout) from None

    async def _unload_idle_models(self) -> None:
        period = min(1.0, self.limits.idle_timeout / 4)
        while True:
            await asyncio.sleep(period)
            self.idle_sweeps += 1
            for slot in self.slots.values():
                if slot.is_idle(self.limits.idle_timeout):
                    await self._run_on_thread(self._unload_if_still_idle, slot)

    def _unload_if_still_idle(self, slot: ModelSlot) -> None:
        # Re-checked on the inference thread: a job may have been admitted since the check.
        if slot.is_idle(self.limits.idle_timeout):
            self._loop_thread.unload(slot, f"idle for {self.limits.idle_timeout:g} s")
