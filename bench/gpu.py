"""The frame on a GPU, captured against eager, and what it gives streams; or, with
`--device cpu`, what makes it capturable, counted on the tiny checkpoint.

Run from the repository root::

    python bench/gpu.py                 # a GPU: builds the full-size dev checkpoint itself
    python bench/gpu.py --device cpu    # the CPU proofs' figures, in under 2 minutes
    python bench/gpu.py --device sim    # the engine on the simulated CUDA device: its figures

On a GPU (under 8 minutes), one table each:
1. ms per frame per batch bucket: eager, captured, and the package's `generate` (batch 1),
   with `torch.cuda.set_sync_debug_mode("error")` over the captured frames (a sync raises);
2. one stream through the engine: first audio, real-time factor;
3. first audio p50/p95 and audio-s/s at 1, 8, 32 and 64 streams through the engine, and at 8
   through HTTP;
4. capture time and graph memory; GPU memory per sequence and after unload.
On the CPU, per frame at batch 1 and 8: aten operations inside (A) and (B), outside them,
forbidden operations inside them, and graph breaks.
With `--device sim`, the tiny checkpoint on the simulated CUDA device
(server/engine/device/simulated.py), one figure a line as `sim <name>: <number>`: operations
outside graphs per frame at batch 1, 8 and 32 (chunks due included), host syncs per frame
and per join, cross-device operations, pageable copies per frame, and the codec's
operations outside graphs per chunk.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_concurrency import build_engine, concurrency_table, one_stream_table, percentile

from server.devmodel import build_dev_checkpoint
from server.engine.frame.graphs import FrameGraphs
from server.engine.frame.step import FrameShape, bucket_for
from server.engine.jobs import SAMPLE_RATE, SamplingParams
from server.engine.slots.qwen import LoopLimits, QwenBackend
from tests.support.frame_audit import counting, graph_breaks
from tests.support.frame_runs import Entry, run_batch, speech_job

TEXT = "Counting what one frame of speech costs, inside the captured parts and outside them."


def op_table(backend: QwenBackend) -> None:
    model = backend.frames
    print("\nper frame: aten operations inside (A)+(B), outside, forbidden inside, graph breaks")
    print(f"{'batch':>5} | {'inside':>7} | {'outside':>7} | {'forbidden':>9} | {'graph breaks (B, A)':>19}")
    for rows in (1, 8):
        loop = asyncio.new_event_loop()
        from server.engine.sequence import JobStream

        with torch.inference_mode():
            sequences = [
                backend.batch.start(
                    JobStream(speech_job(seed=i, text=TEXT, token_cap=64), 600, loop, 10**9),
                    0.0,
                    backend.row_sampling(SamplingParams()),
                )
                for i in range(rows)
            ]
            backend.batch.step()
            with counting(model) as counts:
                for _ in range(3):
                    backend.batch.step()
            bucket = bucket_for(rows, model.batch_buckets)
            breaks = graph_breaks(
                model, FrameShape(bucket, model.length_buckets[0], model.vocab, model.predictor_vocab)
            )
            for sequence in sequences:
                backend.batch.remove(sequence)
        loop.close()
        forbidden = sum(counts.forbidden.values()) / max(counts.frames, 1)
        print(
            f"{rows:>5} | {counts.per_frame(counts.inside):>7.0f} | {counts.per_frame(counts.outside):>7.0f} | "
            f"{forbidden:>9.0f} | {breaks['predictor']['breaks']:>9}, {breaks['talker']['breaks']}"
        )


def frame_ms(backend: QwenBackend, rows: int, frames: int) -> float:
    """Median ms per frame with `rows` sequences (greedy, so every row runs its budget)."""
    timings: list[float] = []
    original = backend.batch.runner

    def timed(shape: FrameShape) -> None:
        torch.cuda.synchronize()
        started = time.perf_counter()
        original(shape)
        torch.cuda.synchronize()
        timings.append((time.perf_counter() - started) * 1000)

    backend.batch.runner = timed
    try:
        run_batch(
            backend,
            [Entry(speech_job(seed=i, sampling=SamplingParams(temperature=0), token_cap=frames)) for i in range(rows)],
        )
    finally:
        backend.batch.runner = original
    return statistics.median(timings[2:] or timings)


def frame_table(backend: QwenBackend, buckets: list[int], frames: int) -> FrameGraphs:
    """Eager, then captured (the backend keeps its graphs, as a served model does)."""
    print("\n1. ms per frame per batch bucket (the frame's two functions; greedy rows)")
    eager = {rows: frame_ms(backend, rows, frames) for rows in buckets}
    with torch.inference_mode():
        backend.capture_graphs()  # the frame's and the codec's, as a model loaded to serve
    graphs = backend.graphs
    assert graphs is not None

    def replay_strictly(shape: FrameShape) -> None:
        # A host sync inside the captured frame raises; the batch's own reads around it (the
        # frame's output, a join's prefill) are allowed, so the mode is on for the replays only.
        torch.cuda.set_sync_debug_mode("error")
        try:
            graphs.run(shape)
        finally:
            torch.cuda.set_sync_debug_mode("default")

    backend.batch.runner = replay_strictly
    captured = {rows: frame_ms(backend, rows, frames) for rows in buckets}
    started = time.perf_counter()
    with torch.inference_mode():
        wavs = backend._model.generate_custom_voice(
            text=TEXT, speaker=backend.speakers[0], language="English", do_sample=False, subtalker_dosample=False
        )
    package_s = time.perf_counter() - started
    package_frames = len(wavs[0][0]) / (SAMPLE_RATE / 12.5)
    print(f"{'batch':>5} | {'eager ms':>8} | {'captured ms':>11} | {'speed-up':>8}")
    for rows in buckets:
        print(f"{rows:>5} | {eager[rows]:>8.2f} | {captured[rows]:>11.2f} | {eager[rows] / captured[rows]:>8.2f}")
    print(f"package generate, batch 1: {package_s * 1000 / max(package_frames, 1):.2f} ms per frame (incl. decode)")
    status = graphs.status.describe()
    print(f"capture: {status['captured']} graphs in {status['capture_seconds']} s, pool {status['pool_mib']} MiB")
    print(f"codec: {status['codec_captured']} graphs (chunk frames x batch bucket)")
    if status["failed"]:
        print(f"failed captures: {status['failed']}")
    backend.batch.runner = graphs.run
    return graphs


def seeded_identity(backend: QwenBackend, seeds: int = 32) -> None:
    """The fraction of seeded requests whose codes are the same alone as in batches of 8 and
    of 32 (a GPU's kernels may differ by batch size, so near ties can flip)."""
    jobs = [speech_job(seed=seed, text=TEXT, token_cap=48) for seed in range(seeds)]
    alone = [run_batch(backend, [Entry(job)])[0] for job in jobs]
    for size in (8, 32):
        together: list[torch.Tensor] = []
        for start in range(0, seeds, size):
            together += run_batch(backend, [Entry(job) for job in jobs[start : start + size]])
        same = sum(torch.equal(a, b) for a, b in zip(alone, together, strict=True))
        print(f"seeded codes identical alone and in batches of {size}: {same}/{seeds} ({same / seeds:.0%})")


async def engine_tables(backend: QwenBackend, model: str, max_batch: int, levels: list[int]) -> None:
    """Through the engine, on the backend the frame table loaded and captured (one load)."""
    engine = build_engine(model, "cuda", max_batch, 2048, 0)
    for slot in engine.slots.values():
        slot._loader = lambda _model_id: (backend, 0.0)
    await engine.start(preload=("custom_voice",))
    try:
        backend = engine.slots["custom_voice"].backend
        assert backend is not None, engine.slots["custom_voice"].describe()
        print(f"\ngraphs at load: {backend.graph_status.describe()}")
        speaker = "Vivian" if "Vivian" in backend.speakers else backend.speakers[0]
        await one_stream_table(engine, speaker, 2)
        await concurrency_table(engine, speaker, levels, f"engine, MAX_BATCH_SIZE {max_batch}")
        allocated = torch.cuda.memory_allocated()
        print(f"\nGPU memory with the model loaded: {allocated / 2**30:.2f} GiB")
        print(f"key/value memory per sequence: {backend.frames.cache.bytes / max_batch / 2**20:.1f} MiB")
    finally:
        await engine.stop(grace=0)
    torch.cuda.empty_cache()
    print(f"GPU memory after unload: {torch.cuda.memory_allocated() / 2**20:.1f} MiB")


def http_table(model: str, streams: int) -> None:
    from tests.support.live_server import live_server

    body = {"model": "tts-1", "voice": "alloy", "response_format": "pcm", "stream": True}
    # A full-size checkpoint loads, warms up and captures every bucket before it is ready.
    with live_server(
        model_id=model, device="cuda", preload_model=True, idle_timeout=0, max_batch_size=64, ready_timeout=600
    ) as srv:

        def one(n: int) -> tuple[float, int]:
            with srv.client(timeout=600) as client:
                started = time.perf_counter()
                first, size = 0.0, 0
                text = f"Listener {n} asks for a paragraph of its own, two sentences long. It runs a while."
                with client.stream("POST", "/v1/audio/speech", json={**body, "input": text}) as response:
                    for piece in response.iter_raw():
                        if not size:
                            first = time.perf_counter() - started
                        size += len(piece)
                return first * 1000, size // 2

        one(0)
        began = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(streams) as pool:
            results = list(pool.map(one, range(streams)))
        wall = time.perf_counter() - began
    firsts = [r[0] for r in results]
    audio = sum(r[1] for r in results) / SAMPLE_RATE
    print(f"\n3b. {streams} streams through HTTP")
    p50, p95 = statistics.median(firsts), percentile(firsts, 0.95)
    print(f"first p50 {p50:.1f} ms, p95 {p95:.1f} ms, {audio / wall:.2f} audio-s/s")


def sim_figures(model: Path, rows_list: tuple[int, ...] = (1, 8, 32)) -> None:
    """The engine on the simulated CUDA device: what each frame and join costs the host."""
    from server.engine.device.simulated import Ledger, SimulatedCuda
    from server.engine.slots.qwen import timed_load

    sim = SimulatedCuda()
    with sim.installed(), torch.inference_mode():
        backend, _ = timed_load(str(model), "cuda", True, 1, LoopLimits(max_batch=max(rows_list), max_length=512))
        frames: dict[int, list[Ledger]] = {}
        joins: list[Ledger] = []
        chunk_frames: list[tuple[Ledger, int]] = []
        loop = asyncio.new_event_loop()
        from server.engine.sequence import JobStream

        for rows in rows_list:
            frames[rows] = []
            for seed in range(rows):
                before = sim.ledger.snapshot()
                backend.batch.start(
                    JobStream(speech_job(seed=seed, text=TEXT, token_cap=30), 600, loop, 10**9),
                    0.0,
                    backend.row_sampling(SamplingParams()),
                )
                joins.append(sim.ledger.since(before))
            while backend.batch.rows:
                before = sim.ledger.snapshot()
                backend.batch.step()
                due = sum(1 for s in backend.batch.rows if s.finished or s.chunk_due(s.stream.job.chunks))
                running = any(not s.finished for s in backend.batch.rows)
                backend.batch.emit(lambda _sequence: None)
                cost = sim.ledger.since(before)
                if running:  # the batch's last frame also waits for its last chunks
                    frames[rows].append(cost)
                if due:
                    chunk_frames.append((cost, due))
        loop.close()
        backend.release()
    every = [frame for costs in frames.values() for frame in costs]
    for rows, costs in frames.items():
        # Launches the host pays for: kernels and copies outside the replays.
        print(f"sim ops outside graphs per frame b{rows}: {max(c.ops_outside + c.async_copies for c in costs)}")
    print(f"sim host syncs per frame: {max(f.syncs for f in every)}")
    print(f"sim host syncs per join: {max(j.syncs for j in joins)}")
    print(f"sim cross-device ops: {len(sim.ledger.cross_device)}")
    print(f"sim pageable copies per frame: {max(f.pageable_copies for f in every)}")
    outside = sum(cost.ops_outside + cost.async_copies for cost, _ in chunk_frames)
    per_chunk = outside / max(sum(due for _, due in chunk_frames), 1)
    print(f"sim codec ops outside graphs per chunk: {per_chunk:.0f}")
    print(f"sim graphs captured: {len(sim.ledger.captures)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", type=Path, help="checkpoint directory (default: build a dev one)")
    parser.add_argument("--levels", default="1,8,32,64")
    parser.add_argument("--frames", type=int, default=48, help="frames per row in the ms-per-frame table")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        size = "full" if args.device.startswith("cuda") else "tiny"
        model = args.model or build_dev_checkpoint(Path(scratch) / "custom_voice", "custom_voice", size=size)
        if args.device == "sim":
            print(f"device: simulated CUDA on the CPU  model: {args.model or 'tiny dev checkpoint'}")
            sim_figures(model)
            return 0
        name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
        print(f"device: {name}  model: {args.model or f'{size} dev checkpoint'}  torch {torch.__version__}")
        if not args.device.startswith("cuda"):
            torch.set_num_threads(1)
            backend = QwenBackend.load(str(model), "cpu", 1, LoopLimits(max_batch=8, max_length=512))
            op_table(backend)
            backend.release()
            return 0
        levels = [int(n) for n in args.levels.split(",")]
        backend = QwenBackend.load(str(model), args.device, 0, LoopLimits(max_batch=max(levels), max_length=2048))
        with torch.inference_mode():
            backend.warmup()
        frame_table(backend, [b for b in backend.frames.batch_buckets if b in (1, 8, 32, 64)], args.frames)
        with torch.inference_mode():
            seeded_identity(backend)
        asyncio.run(engine_tables(backend, str(model), max(levels), levels))  # unloads it at the end
        http_table(str(model), 8)
    return 0


if __name__ == "__main__":
    sys.exit(main())
