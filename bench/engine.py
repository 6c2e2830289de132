"""Engine speed on a dev checkpoint: milliseconds per codec frame and times real time, for
several torch thread counts, measured side by side in one process.

Run from the repository root::

    python bench/engine.py [--model DIR] [--threads 1 2] [--repeats 3] [--device cpu]

One frame is 80 ms of audio (1920 samples at 24 kHz), so x real time = 80 / ms per frame.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from server.devmodel import build_dev_checkpoint
from server.engine.jobs import SamplingParams
from server.engine.qwen import QwenBackend, SpeechInput

TEXT = "The quick brown fox jumps over the lazy dog, then rests beside the river for a while."
FRAME_MS = 80.0


def never() -> bool:
    return False


def nothing() -> None:
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        model = args.model or build_dev_checkpoint(Path(scratch) / "custom_voice", "custom_voice")
        backend = QwenBackend.load(str(model), args.device)
        results: dict[int, list[float]] = {n: [] for n in args.threads}
        frames: dict[int, list[int]] = {n: [] for n in args.threads}
        for repeat in range(args.repeats + 1):  # the first round warms up and is dropped
            for threads in args.threads:
                torch.set_num_threads(threads)
                started = time.perf_counter()
                [out] = backend.generate(
                    [SpeechInput(TEXT, language="English", speaker="Vivian")],
                    max_new_tokens=256,
                    seed=repeat,
                    sampling=SamplingParams(),
                    should_stop=never,
                    on_frame=nothing,
                )
                elapsed_ms = (time.perf_counter() - started) * 1000
                if repeat > 0:
                    results[threads].append(elapsed_ms / max(out.output_frames, 1))
                    frames[threads].append(out.output_frames)

    print(f"device: {args.device}  model: {'tiny dev checkpoint' if args.model is None else args.model}")
    print(f"{'threads':>7} | {'frames':>6} | {'ms/frame':>8} | {'x real time':>11}")
    print("-" * 44)
    for threads in args.threads:
        per_frame = statistics.median(results[threads])
        typical_frames = statistics.median(frames[threads])
        print(f"{threads:>7} | {typical_frames:>6.0f} | {per_frame:>8.1f} | {FRAME_MS / per_frame:>11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
