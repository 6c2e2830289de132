"""The frame loop against the package's own generate, the streaming codec against a whole
decode, and the work a disconnect wastes, side by side in one run.

Run from the repository root::

    python bench/frame_loop.py [--model DIR] [--repeats 5] [--threads 1]

1. Milliseconds per frame for the same text at batch 1, greedy: the package's
   `model.generate` (talker and code predictor, as `generate_custom_voice` calls it) against
   the server's batch code stepping one sequence. Both produce the same codes (checked).
2. Milliseconds per frame with 1 and 8 sequences stepped together at the checkpoint's default
   sampling settings (every sequence seeded), over the frames where all of them ran.
3. Codec: milliseconds per chunk and per frame for the chunk sizes the server streams with,
   against the package's whole decode of the same codes.
4. Sampling one codebook for a batch with the checkpoint's default settings (top-k on) and
   with top-k off, per draw (the counter-based sampler the frame runs). Fresh logits for every
   draw, as in a real step.
5. A streaming client that reads the first chunk and leaves: frames generated after it left,
   and frames generated that it never took.
Without --model a tiny random checkpoint is built in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.devmodel import build_dev_checkpoint
from server.engine.codec.stream import StreamingDecoder
from server.engine.frame.counter_rng import keys as counter_keys
from server.engine.frame.sampling import StageSampling, StageTensors, candidates_for, sample
from server.engine.jobs import SamplingParams, SynthesisJob
from server.engine.sequence import JobStream
from server.engine.slots.qwen import LoopLimits, QwenBackend
from tests.support.engine_control import wait_until
from tests.support.live_server import RecordCollector, live_server

TEXT = "The frame loop is measured against the package on exactly the same sentence and seed."
LONG_TEXT = " ".join(f"Sentence number {i} keeps the stream busy for a while." for i in range(8))


GREEDY = {"do_sample": False, "subtalker_dosample": False}


def package_generate(backend: QwenBackend, seed: int) -> tuple[torch.Tensor, float]:
    wrapper = backend._model
    original = wrapper.model.generate
    measured: dict[str, Any] = {}

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        out = original(*args, **kwargs)
        measured["seconds"] = time.perf_counter() - started
        measured["codes"] = out[0][0]
        return out

    wrapper.model.generate = timed
    try:
        torch.manual_seed(seed)
        with torch.inference_mode():
            wrapper.generate_custom_voice(text=TEXT, speaker="Vivian", language="English", max_new_tokens=512, **GREEDY)
    finally:
        wrapper.model.generate = original
    return measured["codes"], measured["seconds"]


def loop_generate(backend: QwenBackend, seed: int) -> tuple[torch.Tensor, float]:
    job = SynthesisJob(
        slot="custom_voice",
        segments=(TEXT,),
        language="English",
        token_cap=512,
        speaker="Vivian",
        seed=seed,
        sampling=SamplingParams(temperature=0),
    )
    stream = JobStream(job, 600, asyncio.new_event_loop(), max_ahead=10**9)
    batch = backend.batch
    with torch.inference_mode():
        started = time.perf_counter()
        sequence = batch.start(stream, 0.0, backend.row_sampling(job.sampling))
        while not sequence.finished:
            batch.step()
        seconds = time.perf_counter() - started
        codes = sequence.pending_codes()
        batch.remove(sequence)
    return codes, seconds


def batched_ms_per_frame(backend: QwenBackend, rows: int, repeats: int) -> list[float]:
    """Milliseconds per frame with `rows` sequences at the default settings, each seeded,
    over the frames where all of them ran (only the engine's public batch calls, so the same
    function measures earlier versions side by side)."""
    loop = asyncio.new_event_loop()
    batch = backend.batch
    timings: list[float] = []
    with torch.inference_mode():
        for repeat in range(repeats):
            sequences = []
            for row in range(rows):
                job = SynthesisJob(
                    slot="custom_voice",
                    segments=(TEXT,),
                    language="English",
                    token_cap=512,
                    speaker="Vivian",
                    seed=1000 * repeat + row,
                )
                stream = JobStream(job, 600, loop, max_ahead=10**9)
                sequences.append(batch.start(stream, 0.0, backend.row_sampling(SamplingParams())))
            while not all(s.finished for s in sequences):
                full = not any(s.finished for s in sequences)
                started = time.perf_counter()
                batch.step()
                if full:
                    timings.append((time.perf_counter() - started) * 1000)
            for sequence in sequences:
                batch.remove(sequence)
    loop.close()
    return timings


def frame_loop_table(backend: QwenBackend, repeats: int) -> None:
    rows: dict[str, list[float]] = {"package generate": [], "server frame loop": []}
    for seed in range(repeats + 1):  # the first round warms up and is dropped
        expected, package_s = package_generate(backend, seed)
        actual, loop_s = loop_generate(backend, seed)
        if not torch.equal(expected, actual):
            raise SystemExit(f"codes differ for seed {seed}")
        if seed:
            rows["package generate"].append(package_s * 1000 / expected.shape[0])
            rows["server frame loop"].append(loop_s * 1000 / actual.shape[0])
    print("\n1. talker + code predictor, batch 1, greedy, same text (codes equal)")
    print(f"{'':>18} | {'ms/frame median':>15} | {'min':>6} | {'max':>6}")
    for name, values in rows.items():
        print(f"{name:>18} | {statistics.median(values):>15.2f} | {min(values):>6.2f} | {max(values):>6.2f}")
    ratio = statistics.median(rows["server frame loop"]) / statistics.median(rows["package generate"])
    print(f"loop / package: {ratio:.3f}")


def codec_table(backend: QwenBackend, repeats: int) -> None:
    frames = 120
    codes = torch.randint(0, 2048, (frames, 16), generator=torch.Generator().manual_seed(1))
    tokenizer = backend._model.model.speech_tokenizer
    print(f"\n3. codec decode of {frames} frames")
    print(f"{'':>22} | {'ms per call':>11} | {'ms per frame':>12}")
    with torch.inference_mode():
        whole = []
        for _ in range(repeats):
            started = time.perf_counter()
            tokenizer.decode([{"audio_codes": codes}])
            whole.append((time.perf_counter() - started) * 1000)
        print(
            f"{'package, whole':>22} | {statistics.median(whole):>11.1f} | {statistics.median(whole) / frames:>12.2f}"
        )
        for size in (1, 2, 10, 25):
            per_call = []
            for _ in range(repeats):
                decoder = StreamingDecoder(backend.codec_decoder)
                for start in range(0, frames, size):
                    began = time.perf_counter()
                    decoder.decode(codes[start : start + size])
                    per_call.append((time.perf_counter() - began) * 1000)
            median = statistics.median(per_call)
            print(f"{f'streamed, {size} per chunk':>22} | {median:>11.1f} | {median / size:>12.2f}")


def batch_table(backend: QwenBackend, repeats: int) -> None:
    print("\n2. frames for several sequences at once, default sampling, each seeded")
    print(f"{'sequences':>9} | {'ms/frame median':>15} | {'frames/s':>8} | {'frames measured':>15}")
    for rows in (1, 8):
        batched_ms_per_frame(backend, rows, 1)  # warm-up
        timings = batched_ms_per_frame(backend, rows, repeats)
        median = statistics.median(timings)
        print(f"{rows:>9} | {median:>15.2f} | {rows * 1000 / median:>8.0f} | {len(timings):>15}")


def sampling_table(backend: QwenBackend, repeats: int) -> None:
    default = backend.row_sampling(SamplingParams()).predictor
    vocab = int(backend.frames.predictor.config.vocab_size)
    draws = 200 * repeats
    top_k_off = StageSampling(default.do_sample, default.temperature, 0, default.top_p)
    print(f"\n4. one codebook sampled for a batch (vocabulary {vocab}): microseconds per draw")
    print(f"{'rows':>4} | {f'top-k {default.top_k}':>10} | {'top-k off':>9}")
    for rows in (1, 8, 16):
        logits = [torch.randn(rows, vocab) for _ in range(draws)]
        seeds = np.arange(rows)
        micros = []
        for stage in (default, top_k_off):
            tensors = StageTensors.of([stage] * rows)
            candidates = candidates_for([stage], vocab)
            started = time.perf_counter()
            for frame, scores in enumerate(logits):
                keys = torch.from_numpy(counter_keys(seeds, np.zeros(rows), np.full(rows, frame), np.ones(rows)))
                sample(scores, tensors, keys, candidates, stage.top_p < 1.0)
            micros.append((time.perf_counter() - started) * 1e6 / draws)
        print(f"{rows:>4} | {micros[0]:>10.1f} | {micros[1]:>9.1f}")


def disconnect_table(model: Path, threads: int, repeats: int, device: str) -> None:
    print("\n5. a client reads the first chunk and leaves (default settings)")
    print(f"{'run':>3} | {'frames after it left':>20} | {'frames generated':>16} | {'chunks it never took':>20}")
    with (
        RecordCollector().attached() as log,
        live_server(
            model_id=str(model), device=device, preload_model=True, idle_timeout=0, torch_threads=threads
        ) as srv,
        srv.client(timeout=600) as client,
    ):
        body = {"model": "tts-1", "voice": "alloy", "input": LONG_TEXT, "response_format": "pcm"}
        for run in range(repeats):
            with client.stream("POST", "/v1/audio/speech", json={**body, "seed": run}) as response:
                next(response.iter_raw())

            def cancelled() -> list[Any]:
                return [r for r in log.records if r.getMessage() == "segment cancelled"]

            wait_until(lambda run=run: len(cancelled()) > run)  # type: ignore[misc]
            record = cancelled()[run]
            print(
                f"{run:>3} | {record.frames_after_cancel:>20} | {record.frames_generated:>16} | "
                f"{record.chunks_not_taken:>20}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="checkpoint directory (default: build a tiny one)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        model = args.model or build_dev_checkpoint(Path(scratch) / "custom_voice", "custom_voice")
        label = "tiny dev checkpoint" if args.model is None else model
        print(f"device: {args.device}  threads: {args.threads}  model: {label}")
        backend = QwenBackend.load(str(model), args.device, args.threads, LoopLimits(max_batch=8, max_length=2048))
        frame_loop_table(backend, args.repeats)
        batch_table(backend, args.repeats)
        codec_table(backend, args.repeats)
        sampling_table(backend, args.repeats)
        backend.release()
        disconnect_table(model, args.threads, args.repeats, args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
