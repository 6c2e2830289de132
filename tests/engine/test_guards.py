"""The runaway guards: the pure frame function on made-up rows, and the frame loop on dev
checkpoints steered to stop, never stop, fall silent after their text, or loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from server.engine.frame.guards import MAX_PERIOD, NONE, REPETITION, SILENCE, TAIL, GuardBank, GuardLimits
from server.engine.jobs import CloneVoice, FinishReason, SynthesisJob
from server.engine.sequence import JobStream, Sequence
from server.engine.slots.qwen import LoopLimits, QwenBackend
from tests.support.checkpoints import DevCheckpoint
from tests.support.reference import tone

TEXT = "Hello there, this is a test of the guards."
VOCAB = 16
QUIET = 3  # the made-up quiet code of the pure tests


def bank(limits: GuardLimits, rows: int = 2) -> GuardBank:
    table = torch.zeros(VOCAB, dtype=torch.bool)
    table[QUIET] = True
    guards = GuardBank(limits, rows, table)
    for slot in range(rows):
        guards.reset(slot, text_tokens=4)
    return guards


def run(guards: GuardBank, tokens: list[list[int]], text_done: list[list[bool]]) -> list[tuple[int, int]]:
    """Feed frames (one list of per-row tokens each); the (verdict, trim) of row 0 per frame."""
    out = []
    for frame, done in zip(tokens, text_done, strict=True):
        rows = list(range(len(frame)))
        verdict, trim = guards.observe(rows, torch.tensor(frame), torch.tensor(done))
        out.append((int(verdict[0]), int(trim[0])))
    return out


def test_silence_fires_after_n_quiet_frames_after_the_text_and_never_before() -> None:
    guards = bank(GuardLimits(silence_frames=5, loop_frames=0, tail_ratio=0))
    # 20 quiet frames while the text is being fed: nothing.
    assert all(v == NONE for v, _ in run(guards, [[QUIET, QUIET]] * 20, [[False, False]] * 20))
    # After the text: a loud frame resets the count; the fifth quiet frame in a row fires.
    verdicts = run(guards, [[QUIET, 1]] * 4 + [[1, 1]] + [[QUIET, 1]] * 5, [[True, True]] * 10)
    assert [v for v, _ in verdicts[:9]] == [NONE] * 9
    assert verdicts[9] == (SILENCE, 5)


def test_a_loop_of_any_period_fires_a_quiet_stretch_does_not() -> None:
    window = 12
    limits = GuardLimits(silence_frames=0, loop_frames=window, tail_ratio=0)
    for period in (1, 3, MAX_PERIOD // 4):
        guards = bank(limits, rows=1)
        pattern = [[4 + i % period] for i in range(window * 3)]
        verdicts = run(guards, pattern, [[True]] * len(pattern))
        fired = next(i for i, (v, _) in enumerate(verdicts) if v != NONE)
        assert verdicts[fired] == (REPETITION, window - period)
        assert fired < window + period * 2
    # The same loop while the text is still fed never fires; nor does a long quiet stretch.
    guards = bank(limits, rows=1)
    assert all(v == NONE for v, _ in run(guards, [[5]] * 40, [[False]] * 40))
    guards = bank(limits, rows=1)
    assert all(v == NONE for v, _ in run(guards, [[QUIET]] * 40, [[True]] * 40))


def test_varied_codes_never_fire_the_loop_guard() -> None:
    guards = bank(GuardLimits(silence_frames=0, loop_frames=12, tail_ratio=0), rows=1)
    generator = torch.Generator().manual_seed(0)
    frames = [[int(torch.randint(4, VOCAB, (1,), generator=generator))] for _ in range(200)]
    assert all(v == NONE for v, _ in run(guards, frames, [[True]] * 200))


def test_the_tail_guard_counts_only_frames_after_the_text() -> None:
    limits = GuardLimits(silence_frames=0, loop_frames=0, tail_ratio=1.0)
    guards = bank(limits, rows=1)
    limit = limits.tail_limit(4)
    verdicts = run(guards, [[5]] * 100, [[False]] * 100)
    assert all(v == NONE for v, _ in verdicts)
    verdicts = run(guards, [[4 + i % 7] for i in range(limit + 1)], [[True]] * (limit + 1))
    assert [v for v, _ in verdicts] == [NONE] * limit + [TAIL]


def test_moved_rows_keep_their_state() -> None:
    guards = bank(GuardLimits(silence_frames=3, loop_frames=0, tail_ratio=0))
    run(guards, [[1, QUIET]] * 2, [[True, True]] * 2)
    guards.move(1, 0)  # row 1 leaves its slot for slot 0
    verdict, trim = guards.observe([0], torch.tensor([QUIET]), torch.tensor([True]))
    assert (int(verdict[0]), int(trim[0])) == (SILENCE, 3)


# ---- the frame loop on steered dev checkpoints -------------------------------------------

LIMITS = GuardLimits(silence_frames=12, loop_frames=16, tail_ratio=8.0)


def load(directory: Path, guards: GuardLimits = LIMITS) -> QwenBackend:
    """A backend of its own (not the session's dev_backend): the guards' limits are the
    loop's settings, and these tests set them."""
    return QwenBackend.load(str(directory), "cpu", limits=LoopLimits(max_batch=2, max_length=1024, guards=guards))


@pytest.fixture(scope="module")
def steered(dev_checkpoint: DevCheckpoint) -> Iterator[dict[str, QwenBackend]]:
    backends = {}
    for behaviour in ("endless", "silent", "loop"):
        backends[behaviour] = load(dev_checkpoint(behaviour=behaviour))
    yield backends
    for backend in backends.values():
        backend.release()


def generate(backend: QwenBackend, job: SynthesisJob) -> tuple[Sequence, list[int]]:
    """Step one segment alone to its end; the sequence and the cb0 of every frame it made."""
    stream = JobStream(job, 600, asyncio.new_event_loop(), max_ahead=10**9)
    batch = backend.batch
    with torch.inference_mode():
        sequence = batch.start(stream, 0.0, backend.row_sampling(job.sampling))
        while not sequence.finished:
            batch.step()
        first = [int(frame[0]) for frame in sequence.pending]
        batch.remove(sequence)
    return sequence, first


def preset_job(token_cap: int = 400) -> SynthesisJob:
    return SynthesisJob(
        slot="custom_voice", segments=(TEXT,), language="english", token_cap=token_cap, speaker="vivian", seed=3
    )


def test_the_ordinary_checkpoint_stops(custom_voice_dir: Path) -> None:
    backend = load(custom_voice_dir)
    try:
        sequence, _ = generate(backend, preset_job())
    finally:
        backend.release()
    assert sequence.finish_reason is FinishReason.STOP
    assert sequence.trim == 0


def test_a_checkpoint_that_never_stops_ends_with_length(steered: dict[str, QwenBackend]) -> None:
    sequence, _ = generate(steered["endless"], preset_job(token_cap=40))  # any cap proves it
    assert sequence.finish_reason is FinishReason.LENGTH
    assert sequence.frames == sequence.budget - 1 and sequence.trim == 0


def test_silence_after_the_text_ends_with_silence_and_its_tail_trimmed(steered: dict[str, QwenBackend]) -> None:
    backend = steered["silent"]
    sequence, cb0 = generate(backend, preset_job())
    assert backend.frames.guards is not None
    quiet = backend.frames.guards.quiet_table
    assert sequence.finish_reason is FinishReason.SILENCE
    assert sequence.frames < sequence.budget - 1
    # It fired on the N-th quiet frame after the speech: N - 1 quiet frames were made, and all
    # of them are trimmed; what is kept ends on a loud frame.
    loud = [i for i, code in enumerate(cb0) if not quiet[code]]
    assert len(cb0) - (loud[-1] + 1) == LIMITS.silence_frames - 1 == sequence.trim
    kept = cb0[: len(cb0) - sequence.trim]
    assert kept and not quiet[kept[-1]]


def test_a_loop_ends_with_repetition(steered: dict[str, QwenBackend]) -> None:
    sequence, cb0 = generate(steered["loop"], preset_job())
    assert sequence.finish_reason is FinishReason.REPETITION
    tail = cb0[-LIMITS.loop_frames :]
    assert tail[0::2] == [tail[0]] * len(tail[0::2]) and tail[1::2] == [tail[1]] * len(tail[1::2])
    assert tail[0] != tail[1]  # a period-2 loop
    assert sequence.trim == LIMITS.loop_frames - 3  # the window less the first period and the unmade frame


def test_no_guard_ends_a_segment_whose_text_is_still_fed(dev_checkpoint: DevCheckpoint) -> None:
    """A cloned voice is fed its text one token per frame; with guards that would fire on the
    first quiet or repeated frame, the silent checkpoint still ends only after it was all fed."""
    directory = dev_checkpoint("base", behaviour="silent")
    backend = load(directory, GuardLimits(silence_frames=1, loop_frames=2, tail_ratio=0.01))
    long_text = " ".join(["a fairly long sentence for the text to take its time"] * 3)
    job = SynthesisJob(
        slot="base",
        segments=(long_text,),
        language="english",
        token_cap=600,
        clone=CloneVoice(reference=(tone(1.5)[:, 0], 24_000)),
        seed=1,
    )
    try:
        sequence, _ = generate(backend, job)
    finally:
        backend.release()
    assert sequence.finish_reason is not FinishReason.STOP
    # The frame that tripped it came after the last text token was fed.
    assert sequence.frames >= sequence.prompt.trailing.shape[1]
