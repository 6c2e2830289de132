"""What makes the frame capturable as CUDA graphs, proven on the CPU: its two functions trace
without a graph break and compile once whatever the positions and contents; no host sync,
data-dependent shape, tensor from Python data or cross-device copy runs inside them; little
runs outside them; their buffers never move; every shape the scheduler can produce is in the
capture list; and replaying captured closures gives the codes of the eager frame."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

from server.engine.codec.chunks import chunk_sizes
from server.engine.frame.graphs import FrameGraphs, capture_plan
from server.engine.frame.step import FrameShape, bucket_for
from server.engine.jobs import ChunkPlan, SamplingParams
from server.engine.sequence import JobStream
from server.engine.slots.qwen import QwenBackend
from tests.support.checkpoints import DevBackend
from tests.support.frame_audit import counting, graph_breaks
from tests.support.frame_runs import Entry, run_batch, speech_job

SETTINGS = [SamplingParams(), SamplingParams(temperature=0), SamplingParams(top_k=0, top_p=0.8)]


@pytest.fixture(scope="module")
def backend(dev_backend: DevBackend) -> QwenBackend:
    """The session's shared backend: the tests that swap its frame runner put it back."""
    loaded: QwenBackend = dev_backend("custom_voice", max_batch=8, max_length=512)
    return loaded


def mixed(rows: int, token_cap: int = 24) -> list[Entry]:
    return [
        Entry(speech_job(seed=40 + i, sampling=SETTINGS[i % len(SETTINGS)], token_cap=token_cap)) for i in range(rows)
    ]


@pytest.fixture
def runner(backend: QwenBackend) -> Iterator[Callable[[Callable[[FrameShape], None]], None]]:
    """Swap the batch's frame runner for the test; the eager one comes back after."""
    original = backend.batch.runner

    def use(run: Callable[[FrameShape], None]) -> None:
        backend.batch.runner = run

    yield use
    backend.batch.runner = original


def test_the_frame_functions_trace_without_graph_breaks(backend: QwenBackend) -> None:
    model = backend.frames
    with torch.inference_mode():
        for shape in (FrameShape(2, 256, 64, 64, False, False), FrameShape(8, 512, model.vocab, model.predictor_vocab)):
            for name, found in graph_breaks(model, shape).items():
                assert found["breaks"] == 0, (name, shape, found["reasons"])
                assert found["graphs"] == 1, (name, shape)


def test_the_frame_compiles_once_across_positions_and_contents(
    backend: QwenBackend, runner: Callable[[Callable[[FrameShape], None]], None]
) -> None:
    import torch._dynamo

    compiled: list[str] = []

    def counting_backend(graph: torch.fx.GraphModule, inputs: Any) -> Callable[..., Any]:
        compiled.append(graph.code)
        return graph.forward

    model = backend.frames
    predictor = torch.compile(model.predictor_frame, backend=counting_backend, fullgraph=True)
    talker = torch.compile(model.talker_step, backend=counting_backend, fullgraph=True)

    shapes: set[FrameShape] = set()

    def run(shape: FrameShape) -> None:
        shapes.add(shape)
        predictor(shape)
        talker(shape)

    # One shape; eight frames: eight positions per row show that nothing recompiles (every
    # frame through the traced graphs costs, and a longer run would show nothing more).
    entries = [Entry(speech_job(seed=50 + i, sampling=SamplingParams(top_k=0), token_cap=8)) for i in range(3)]
    eager = run_batch(backend, entries)
    torch._dynamo.reset()
    try:
        runner(run)
        again = run_batch(backend, [Entry(entry.job) for entry in entries])
    finally:
        torch._dynamo.reset()
    # (B) and (A) once per shape (rows that finish shrink the bucket), over every frame of
    # rows at their own positions with their own contents.
    assert len(compiled) == 2 * len(shapes)
    assert len(shapes) < 4
    assert all(torch.equal(a, b) for a, b in zip(again, eager, strict=True))
    assert all(len(codes) > 4 for codes in eager)


def test_nothing_forbidden_inside_the_frame_and_little_outside(backend: QwenBackend) -> None:
    """At batch 8: no forbidden operation inside (A) and (B) over whole segments (joins and
    leaves included), and at most 60 operations per frame outside them in a frame of eight."""
    with counting(backend.frames) as counts:
        run_batch(backend, mixed(8, token_cap=8))
    assert counts.frames >= 6
    assert dict(counts.forbidden) == {}
    loop = asyncio.new_event_loop()
    batch = backend.batch
    with torch.inference_mode():
        sequences = [
            batch.start(JobStream(entry.job, 600, loop, 10**9), 0.0, backend.row_sampling(entry.job.sampling))
            for entry in mixed(8)
        ]
        with counting(backend.frames) as steady:
            batch.step()
            batch.step()
        for sequence in sequences:
            batch.remove(sequence)
    loop.close()
    assert steady.frames == 2
    assert dict(steady.forbidden) == {}
    assert steady.per_frame(steady.outside) <= 60, steady.outside
    assert steady.per_frame(steady.inside) > 500  # the frame itself: thousands of operations


def test_static_buffers_keep_their_addresses(backend: QwenBackend) -> None:
    model = backend.frames

    def addresses() -> dict[str, int]:
        found = {name: tensor.data_ptr() for name, tensor in model.state.static_tensors().items()}
        for cache_name, cache in (("talker", model.cache), ("predictor", model.predictor_cache)):
            for layer, (keys, values) in enumerate(zip(cache.keys, cache.values, strict=True)):
                found[f"{cache_name}.keys.{layer}"] = keys.data_ptr()
                found[f"{cache_name}.values.{layer}"] = values.data_ptr()
        return found

    before = addresses()
    entries = mixed(5, token_cap=16)
    entries[3].join_after = 3
    run_batch(backend, entries)
    assert addresses() == before


def test_every_shape_the_scheduler_produces_is_in_the_capture_list(
    backend: QwenBackend, runner: Callable[[Callable[[FrameShape], None]], None]
) -> None:
    model = backend.frames
    plan = set(capture_plan(model))
    for rows in range(1, backend.batch.capacity + 1):
        assert ("predictor", bucket_for(rows, model.batch_buckets), 0) in plan
        for position in range(1, model.max_length + 1):
            assert ("talker", bucket_for(rows, model.batch_buckets), bucket_for(position, model.length_buckets)) in plan
    seen: list[FrameShape] = []

    def recording(shape: FrameShape) -> None:
        seen.append(shape)
        backend.batch.run_eager(shape)

    runner(recording)
    entries = mixed(6, token_cap=12)
    entries[5].join_after = 4
    run_batch(backend, entries)
    assert {shape.bucket for shape in seen} >= {8}
    for shape in seen:
        assert ("predictor", shape.bucket, 0) in plan and ("talker", shape.bucket, shape.length) in plan
    # Every chunk a stream's schedule can produce, doubling sizes and remainders alike.
    chunk_plan = ChunkPlan(first_frames=2, frames=24)
    sizes = set(chunk_sizes(chunk_plan))
    for delivered in range(20):
        target = min(chunk_plan.frames, chunk_plan.first_frames << min(delivered, 16))
        assert set(range(1, target + 1)) <= sizes


class Rerun:
    """A capturer whose replay re-runs the closure over the buffers, as a replay re-runs its
    kernels (and ignores anything passed in fresh)."""

    def __call__(self, name: str, run: Callable[[], None]) -> Callable[[], None]:
        return run

    def release(self) -> None:
        return None


def test_replayed_captures_give_the_eager_codes(
    backend: QwenBackend, runner: Callable[[Callable[[FrameShape], None]], None]
) -> None:
    """Captures that re-run their closure over the buffers, as a replay re-runs its kernels:
    every id a candidate and top-p on, whatever the batch's settings, and the same codes."""
    entries = mixed(3)
    eager = run_batch(backend, entries)
    graphs = FrameGraphs(backend.frames, capture_with=Rerun())
    with torch.inference_mode():
        graphs.capture()
    assert graphs.status.captured == len(capture_plan(backend.frames))
    assert graphs.status.failed == {}
    runner(graphs.run)
    replayed = run_batch(backend, [Entry(entry.job) for entry in entries])
    assert all(torch.equal(a, b) for a, b in zip(replayed, eager, strict=True))
