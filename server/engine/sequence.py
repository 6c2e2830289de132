"""A job as the inference thread runs it: the stream it feeds (shared with the async side) and
the sequence of the segment being generated (the inference thread's alone).

Handing audio over: the thread `deliver`s chunks onto the event loop; the consumer counts what
it `took`. A stream more than `max_ahead` chunks ahead of its consumer is *backlogged*: its
sequence keeps its place in the batch but is not stepped until the consumer catches up, so a
slow reader bounds the memory its request holds and frees the compute for others.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from server.engine.frame.sampling import RowSampling
from server.engine.jobs import AudioChunk, ChunkPlan, FinishReason, SynthesisJob
from server.engine.prompt import Prompt

MAX_SEED = 2**31 - 1


def draw_seed() -> int:
    """A seed for a request that sent none (the range a request may send)."""
    return secrets.randbelow(MAX_SEED + 1)


def segment_seed(seed: int, segment: int) -> int:
    """The seed of a job's segment: the job's seed plus the segment's index."""
    return (seed + segment) % (MAX_SEED + 1)


class StreamEnd:
    """Marks the end of a stream's items."""


END = StreamEnd()

StreamItem = AudioChunk | BaseException | StreamEnd


class JobStream:
    """One admitted job: its output, its cancel flag and deadline, its place in line."""

    def __init__(
        self,
        job: SynthesisJob,
        timeout: float,
        loop: asyncio.AbstractEventLoop,
        max_ahead: int,
        request_id: str | None = None,
    ) -> None:
        self.job = job
        # Every job has a seed, so any output can be reproduced: the client's, or one drawn here.
        self.seed = job.seed if job.seed is not None else draw_seed()
        self.request_id = request_id  # for the engine's log lines
        self.job_timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.cancelled = threading.Event()
        self.submitted = time.perf_counter()
        self.max_ahead = max_ahead
        self.delivered = 0  # chunks handed over (inference thread)
        self.taken = 0  # chunks the consumer took (event loop)
        self.frames_generated = 0  # inference thread
        self.frames_at_cancel: int | None = None  # frames generated when the consumer left (event loop)
        self.next_segment = 0  # inference thread
        self.segment_ready_at = self.submitted  # when the next segment became ready to start
        self._loop = loop
        self._items: asyncio.Queue[StreamItem] = asyncio.Queue()

    # ---- inference thread --------------------------------------------------------------

    @property
    def backlogged(self) -> bool:
        return self.delivered - self.taken >= self.max_ahead

    def deliver(self, item: StreamItem) -> None:
        if isinstance(item, AudioChunk):
            self.delivered += 1
        # The event loop closes only after the engine has stopped; a stream outliving it has
        # no consumer left to tell.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._items.put_nowait, item)

    # ---- event loop --------------------------------------------------------------------

    def cancel(self) -> None:
        """The consumer is gone (or out of time): stop at the next frame."""
        if not self.cancelled.is_set():
            self.frames_at_cancel = self.frames_generated
            self.cancelled.set()

    async def next_item(self) -> StreamItem:
        item = await self._items.get()
        if isinstance(item, AudioChunk):
            self.taken += 1
        return item


@dataclass(eq=False)
class Sequence:
    """One segment being generated (inference thread only)."""

    stream: JobStream
    segment: int
    text: str
    prompt: Prompt
    sampling: RowSampling
    seed: int  # the segment's seed (segment_seed): its draws are keyed by (seed, frame, codebook)
    budget: int  # max_new_tokens: codebook-0 tokens it may sample (frames = tokens - 1)
    decoder: Any = None  # its own StreamingDecoder where each stream decodes alone (the CPU)
    slot: int = -1  # its row in the KV cache and the device batch
    position: int = 0  # where its next token is written (the device holds the same)
    sampled: int = 0  # codebook-0 tokens sampled
    frames: int = 0  # frames generated
    pending: list[list[int]] = field(default_factory=list)  # frames not yet decoded, 16 codes each
    chunks: int = 0  # chunks delivered for this segment
    finished: bool = False  # end of speech, budget reached or a guard fired: no more frames
    finish_reason: FinishReason | None = None
    trim: int = 0  # frames at the end that a guard cut from the audio
    batch_max: int = 1
    queued_ms: float = 0.0
    load_ms: float = 0.0
    started: float = 0.0  # perf_counter at prefill

    def finish(self, reason: FinishReason, trim: int = 0) -> None:
        self.finished = True
        self.finish_reason = reason
        self.trim = trim

    def pending_codes(self) -> torch.Tensor:
        """The frames not yet decoded, long [frames, 16]."""
        return torch.tensor(self.pending, dtype=torch.long).reshape(-1, 16)

    def chunk_due(self, plan: ChunkPlan) -> bool:
        """Whether the pending frames make a chunk now, and always at the end of the segment.
        A job's chunks grow from `plan.first_frames`, doubling up to `plan.frames`: the
        listener hears something at once, and each chunk takes no longer to generate than
        the audio already handed over lasts (at any real-time factor below 1)."""
        if not self.pending:
            return False
        if self.finished:
            return True
        target = min(plan.frames, plan.first_frames << min(self.stream.delivered, 16))
        return len(self.pending) >= target
