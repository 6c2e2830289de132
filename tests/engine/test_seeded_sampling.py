"""Seeded sampling through the real frame loop: a seeded job's codes are the same alone and in
any company, whatever its slot, its batch's bucket and padding, rows that join and leave
around it (moving it to another slot, shrinking the bucket) and frames it sits out while its
reader is behind. Every job gets a seed, and that seed reproduces it."""

from __future__ import annotations

import pytest
import torch

from server.engine.jobs import SamplingParams
from server.engine.sequence import MAX_SEED, JobStream
from server.engine.slots.qwen import QwenBackend
from tests.support.checkpoints import DevBackend
from tests.support.frame_runs import Entry, codes_alone, run_batch, speech_job

OTHERS = [
    SamplingParams(temperature=1.3, top_k=0, top_p=0.9),  # top-k off: the batch looks at every id
    SamplingParams(temperature=0),  # greedy
    SamplingParams(top_k=5, repetition_penalty=1.3),
    SamplingParams(),
]


@pytest.fixture(scope="module")
def backend(dev_backend: DevBackend) -> QwenBackend:
    loaded: QwenBackend = dev_backend("custom_voice", max_batch=8, max_length=512)
    return loaded


def test_a_seeded_job_has_the_same_codes_in_any_company(backend: QwenBackend) -> None:
    target = speech_job(seed=5)
    alone = codes_alone(backend, target)
    assert alone.shape[0] > 8
    assert torch.equal(codes_alone(backend, target), alone)  # and again
    others = [speech_job(seed=100 + i, sampling=s, speaker="Ryan") for i, s in enumerate(OTHERS)]
    # Third of three rows: bucket 4 with a padded row.
    third = run_batch(backend, [Entry(others[0]), Entry(others[1]), Entry(target)])[2]
    assert torch.equal(third, alone)
    # First of five: bucket 8, three padded rows, settings of every kind beside it.
    first = run_batch(backend, [Entry(target), *(Entry(job) for job in others)])[0]
    assert torch.equal(first, alone)


def test_rows_joining_and_leaving_around_a_seeded_job_change_nothing(backend: QwenBackend) -> None:
    """A short job in slot 0 ends early: the target moves from slot 2 to slot 0 and the bucket
    shrinks; another joins mid-way; the target's codes stay as they were alone."""
    target = speech_job(seed=9, sampling=SamplingParams(temperature=1.1, top_p=0.8))
    alone = codes_alone(backend, target)
    short = speech_job(seed=1, token_cap=4)
    entries = [
        Entry(short),
        Entry(speech_job(seed=2, speaker="Ryan")),
        Entry(target),
        Entry(speech_job(seed=3, sampling=SamplingParams(top_k=0)), join_after=5),
    ]
    assert torch.equal(run_batch(backend, entries)[2], alone)


def test_frames_a_seeded_job_sits_out_change_nothing(backend: QwenBackend) -> None:
    """Its reader falls behind for a few frames (the row stays in the batch, not stepped)."""
    target = speech_job(seed=21)
    alone = codes_alone(backend, target)
    paused = run_batch(backend, [Entry(speech_job(seed=4)), Entry(target, pause=range(3, 7))])[1]
    assert torch.equal(paused, alone)


def test_every_job_gets_a_seed_that_reproduces_it(backend: QwenBackend) -> None:
    unseeded = speech_job(seed=None)
    stream = JobStream(unseeded, 600, None, 1)  # type: ignore[arg-type]
    assert 0 <= stream.seed <= MAX_SEED
    draws = {JobStream(unseeded, 600, None, 1).seed for _ in range(8)}  # type: ignore[arg-type]
    assert len(draws) > 1  # drawn afresh for each job
    entry = Entry(unseeded)
    codes = run_batch(backend, [entry])[0]
    assert entry.stream is not None
    assert torch.equal(codes_alone(backend, speech_job(seed=entry.stream.seed)), codes)


def test_segments_and_seeds_draw_differently(backend: QwenBackend) -> None:
    """The key holds the seed and the segment: another seed, or the same text as the job's
    next segment, gives other codes."""
    first = codes_alone(backend, speech_job(seed=5))
    other_seed = codes_alone(backend, speech_job(seed=6))
    assert not torch.equal(first, other_seed)
    loop_job = speech_job(seed=5, segments=2)
    entry = Entry(loop_job)
    run_batch(backend, [entry])
    assert entry.stream is not None and entry.stream.next_segment == 1
    second = run_batch(backend, [Entry(loop_job, stream=entry.stream)])[0]
    assert not torch.equal(second[: len(first)], first[: len(second)])
