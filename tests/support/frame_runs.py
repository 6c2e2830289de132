"""Running jobs through a loaded backend's batch directly (no server, no codec): who joins
when, who pauses, and the codes each job's first segment produced. Finished sequences leave
at once, as the engine's emit makes them, so the rows behind them move."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import torch

from server.engine.jobs import SamplingParams, SynthesisJob
from server.engine.sequence import JobStream, Sequence
from server.engine.slots.qwen import QwenBackend

TEXT = "Seeded speech must not depend on its company."


def speech_job(
    seed: int | None,
    sampling: SamplingParams | None = None,
    text: str = TEXT,
    speaker: str = "Vivian",
    token_cap: int = 96,
    segments: int = 1,
) -> SynthesisJob:
    return SynthesisJob(
        slot="custom_voice",
        segments=(text,) * segments,
        language="English",
        token_cap=token_cap,
        speaker=speaker,
        seed=seed,
        sampling=sampling or SamplingParams(),
    )


@dataclass
class Entry:
    job: SynthesisJob
    join_after: int = 0  # frames the batch runs before this job joins
    pause: range = range(0)  # frames of the batch during which its stream is backlogged
    stream: JobStream | None = None
    sequence: Sequence | None = None
    codes: list[list[int]] = field(default_factory=list)


def run_batch(backend: QwenBackend, entries: list[Entry]) -> list[torch.Tensor]:
    """Step the batch until every entry's first segment finished; each entry's codes."""
    loop = asyncio.new_event_loop()
    batch = backend.batch
    frame = 0
    try:
        with torch.inference_mode():
            while True:
                for entry in entries:
                    if entry.sequence is None and frame >= entry.join_after:
                        if entry.stream is None:  # a given stream starts its next segment
                            entry.stream = JobStream(entry.job, 600, loop, max_ahead=10**9)
                        sampling = backend.row_sampling(entry.job.sampling)
                        entry.sequence = batch.start(entry.stream, 0.0, sampling)
                    if entry.stream is not None:
                        entry.stream.max_ahead = 0 if frame in entry.pause else 10**9
                if all(e.sequence is not None and e.sequence.finished for e in entries):
                    break
                batch.step()
                frame += 1
                for entry in entries:
                    sequence = entry.sequence
                    if sequence is not None and sequence.slot >= 0:
                        entry.codes.extend(sequence.pending)
                        sequence.pending.clear()
                        if sequence.finished:
                            batch.remove(sequence)
    finally:
        for entry in entries:
            if entry.sequence is not None and entry.sequence.slot >= 0:
                batch.remove(entry.sequence)
        loop.close()
    return [torch.tensor(entry.codes, dtype=torch.long).reshape(-1, 16) for entry in entries]


def codes_alone(backend: QwenBackend, job: SynthesisJob) -> torch.Tensor:
    return run_batch(backend, [Entry(job)])[0]
