"""The engine alone, without HTTP, on any device: one stream against the package's own
generate, then many streams at once. Made for a GPU run on the full-size dev checkpoint,
where the HTTP side would only add noise; on the CPU, bench/batching.py measures the server.

Run from the repository root::

    python bench/engine_concurrency.py [--model DIR] [--device cuda] [--levels 1,8,16,32]

1. One stream, one sentence of about 40 words, the checkpoint's default sampling: the
   package's `generate_custom_voice` (whole utterance) against the frame loop through the
   engine (first audio chunk, total, real-time factor, milliseconds per frame).
2. N streams starting together for each N in --levels (every one a two-sentence paragraph):
   first-audio p50 and p95, and seconds of audio delivered per wall second. Run once with
   the server's default MAX_BATCH_SIZE and once with a batch as large as the largest level
   (or with the sizes --batch-sizes names).

Without --model a tiny random checkpoint is built in a temporary directory; a full-size one
(0.6B dimensions) is built with `qwen3-tts-server devmodel DIR --size full`. Weights load in
bf16 on CUDA, as the server loads them.
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

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.devmodel import build_dev_checkpoint
from server.engine.jobs import SAMPLE_RATE, SlotName, SynthesisJob
from server.engine.scheduler import Engine, EngineLimits
from server.engine.slots.models import ModelSlot
from server.engine.slots.qwen import LoopLimits, QwenBackend, resolve_device, timed_load

SENTENCE = (
    "The quick brown fox jumps over the lazy dog while the farmer watches from the porch, "
    "wondering whether the rain will hold off long enough for the hay to dry in the field "
    "before the evening comes and the whole valley turns grey."
)
PARAGRAPH = (
    "Listener {n} asks for a paragraph of its own. It has two sentences of an ordinary length, "
    "so that every stream runs for a while."
)
DEFAULT_MAX_BATCH = 8  # the server's MAX_BATCH_SIZE default


def build_engine(model: str, device: str, max_batch: int, max_length: int, threads: int) -> Engine:
    limits = LoopLimits(max_batch=max_batch, max_length=max_length)

    def loader(model_id: str) -> Any:
        return timed_load(model_id, device, True, threads, limits)

    slots: dict[SlotName, ModelSlot] = {
        "custom_voice": ModelSlot("custom_voice", model, device, loader),
        "base": ModelSlot("base", model, device, loader),
    }
    limits_of_engine = EngineLimits(max_queue_depth=1024, request_timeout=600, idle_timeout=0, max_batch_size=max_batch)
    return Engine(slots, limits_of_engine)


async def stream_once(engine: Engine, text: str, speaker: str) -> tuple[float, float, int]:
    """Seconds to the first chunk, seconds in total, samples received."""
    job = SynthesisJob(slot="custom_voice", segments=(text,), language="English", token_cap=2048, speaker=speaker)
    started = time.perf_counter()
    first = 0.0
    samples = 0
    async for chunk in engine.synthesize(job):
        if not samples:
            first = time.perf_counter() - started
        samples += len(chunk.pcm)
    return first, time.perf_counter() - started, samples


def package_generate(backend: QwenBackend, speaker: str) -> tuple[float, float]:
    """Seconds for the package's whole-utterance generate, and the audio's seconds."""
    started = time.perf_counter()
    with torch.inference_mode():
        wavs, rate = backend._model.generate_custom_voice(text=SENTENCE, speaker=speaker, language="English")
    return time.perf_counter() - started, len(wavs[0]) / rate


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def one_stream_table(engine: Engine, speaker: str, repeats: int) -> None:
    package: list[tuple[float, float]] = []
    loop: list[tuple[float, float, int]] = []
    for _ in range(repeats + 1):  # the first round warms up and is dropped
        package.append(await engine.run_with_model("custom_voice", lambda b: package_generate(b, speaker)))
        loop.append(await stream_once(engine, SENTENCE, speaker))
    package, loop = package[1:], loop[1:]
    print("\n1. one stream, a 40-word sentence (medians of", repeats, "runs)")
    print(f"{'':>22} | {'first audio (ms)':>16} | {'total (s)':>9} | {'audio (s)':>9} | {'RTF':>6} | {'ms/frame':>8}")
    seconds = statistics.median(p[0] for p in package)
    audio = statistics.median(p[1] for p in package)
    frames = audio * SAMPLE_RATE / 1920
    print(
        f"{'package generate':>22} | {seconds * 1000:>16.1f} | {seconds:>9.2f} | {audio:>9.2f} | "
        f"{seconds / audio:>6.3f} | {seconds * 1000 / frames:>8.2f}"
    )
    first = statistics.median(r[0] for r in loop)
    total = statistics.median(r[1] for r in loop)
    audio = statistics.median(r[2] for r in loop) / SAMPLE_RATE
    frames = audio * SAMPLE_RATE / 1920
    print(
        f"{'frame loop (engine)':>22} | {first * 1000:>16.1f} | {total:>9.2f} | {audio:>9.2f} | "
        f"{total / audio:>6.3f} | {total * 1000 / frames:>8.2f}"
    )


async def concurrency_table(engine: Engine, speaker: str, levels: list[int], label: str) -> None:
    print(f"\n2. streams starting together ({label})")
    print(f"{'N':>3} | {'first p50 (ms)':>14} | {'first p95 (ms)':>14} | {'audio s / wall s':>16} | {'wall (s)':>8}")
    await stream_once(engine, PARAGRAPH.format(n=0), speaker)  # warm
    for n in levels:
        began = time.perf_counter()
        results = await asyncio.gather(*(stream_once(engine, PARAGRAPH.format(n=i), speaker) for i in range(n)))
        wall = time.perf_counter() - began
        firsts = [r[0] * 1000 for r in results]
        audio = sum(r[2] for r in results) / SAMPLE_RATE
        print(
            f"{n:>3} | {statistics.median(firsts):>14.1f} | {percentile(firsts, 0.95):>14.1f} | "
            f"{audio / wall:>16.2f} | {wall:>8.2f}"
        )


async def run(args: argparse.Namespace, model: str, label: str) -> None:
    device = resolve_device(args.device)
    levels = [int(n) for n in args.levels.split(",")]
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    print(f"device: {name}  model: {label}  torch {torch.__version__}")
    named = args.batch_sizes
    batch_sizes = [int(n) for n in named.split(",")] if named else [DEFAULT_MAX_BATCH, max(levels)]
    for max_batch in sorted(set(batch_sizes)):
        engine = build_engine(model, device, max_batch, args.max_length, args.threads)
        await engine.start(preload=("custom_voice",))
        try:
            backend = engine.slots["custom_voice"].backend
            assert backend is not None, engine.slots["custom_voice"].describe()
            speaker = "Vivian" if "Vivian" in backend.speakers else backend.speakers[0]
            if max_batch == min(batch_sizes) and args.repeats > 0:
                await one_stream_table(engine, speaker, args.repeats)
            await concurrency_table(engine, speaker, levels, f"MAX_BATCH_SIZE {max_batch}")
        finally:
            await engine.stop(grace=0)
        if device.startswith("cuda"):
            peak = torch.cuda.max_memory_allocated() / 2**30
            print(f"peak GPU memory allocated so far: {peak:.1f} GiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="checkpoint directory (default: build a tiny one)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--levels", default="1,8,16,32")
    parser.add_argument("--repeats", type=int, default=3, help="one-stream runs (0 skips that table)")
    parser.add_argument("--batch-sizes", default="", help="MAX_BATCH_SIZE values (default: 8 and the largest level)")
    parser.add_argument("--max-length", type=int, default=2048, help="MAX_SEQUENCE_LENGTH")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        model = args.model or build_dev_checkpoint(Path(scratch) / "custom_voice", "custom_voice")
        label = "tiny dev checkpoint" if args.model is None else str(model)
        asyncio.run(run(args, str(model), label))
    return 0


if __name__ == "__main__":
    sys.exit(main())
