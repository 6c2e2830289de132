"""What one forced alignment costs: the aligner's load, its first call, and the time per
second of audio, for the dev aligner's sizes (or a real checkpoint), in one run.

Run from the repository root::

    python bench/alignment.py [--sizes tiny full] [--aligner DIR] [--seconds 2 10 30] [--repeats 3]

The dev aligners are random (`tiny`: a few layers; `full`: the released model's dimensions,
so its cost stands for the real model's), built in a temporary directory; every line of the
`qwen_asr` alignment path runs: prompt, 16 kHz resample, audio encoder, text model, timestamp
head, repair. Each call aligns noise of the given length against a sentence of about 2.5 words
per second. The load goes through the server's own loader, which includes one warm-up call;
the first call is timed before it, on the bare package.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.devmodel.aligner import build_aligner_checkpoint
from server.engine.slots.aligner import SPEECH_RATE, load_forced_aligner
from server.engine.slots.asr_package import Qwen3ForcedAligner

SENTENCE = "the quick brown fox jumps over the lazy dog while the speech server keeps talking"


def text_for(seconds: float) -> str:
    words = SENTENCE.split()
    count = max(1, round(seconds * 2.5))
    return " ".join(words[i % len(words)] for i in range(count))


def noise(seconds: float) -> np.ndarray:
    return np.random.default_rng(0).uniform(-0.1, 0.1, int(seconds * SPEECH_RATE)).astype(np.float32)


def timed_align(aligner: Qwen3ForcedAligner, seconds: float, text: str) -> float:
    pcm = noise(seconds)
    started = time.perf_counter()
    aligner.align(audio=(pcm, SPEECH_RATE), text=text, language="English")
    return time.perf_counter() - started


def measure(checkpoint: Path, lengths: list[float], repeats: int) -> dict[str, float]:
    bare = Qwen3ForcedAligner.from_pretrained(str(checkpoint), dtype=torch.float32, device_map="cpu")
    result: dict[str, float] = {"first call s": timed_align(bare, 1.0, "first call")}
    del bare
    started = time.perf_counter()
    aligner = load_forced_aligner(str(checkpoint), "cpu")
    result["load s"] = time.perf_counter() - started
    for seconds in lengths:
        calls = [timed_align(aligner, seconds, text_for(seconds)) for _ in range(repeats)]
        result[f"{seconds:g} s audio"] = statistics.median(calls) / seconds
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "full"], choices=["tiny", "full"])
    parser.add_argument("--aligner", type=Path, help="a real aligner checkpoint, measured instead of the dev ones")
    parser.add_argument("--seconds", nargs="+", type=float, default=[2.0, 10.0, 30.0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        if args.aligner:
            rows[str(args.aligner)] = measure(args.aligner, args.seconds, args.repeats)
        for size in [] if args.aligner else args.sizes:
            checkpoint = build_aligner_checkpoint(Path(scratch) / size, size)
            rows[f"dev {size}"] = measure(checkpoint, args.seconds, args.repeats)

    print(f"device: cpu  torch threads: {torch.get_num_threads()}  (per-length columns: seconds per audio second)")
    columns = list(next(iter(rows.values())))
    print(f"{'aligner':>12} | " + " | ".join(f"{name:>12}" for name in columns))
    print("-" * (15 + 15 * len(columns)))
    for name, values in rows.items():
        print(f"{name[-12:]:>12} | " + " | ".join(f"{values[column]:>12.4f}" for column in columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
