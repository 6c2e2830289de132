"""The engine's CPU speed at batch 1 and 8, this tree against an earlier revision, side by side
in one run: each round runs the same measurement in a fresh interpreter of each tree in
turn, so both see the same machine at the same time.

Run from the repository root::

    python bench/revisions.py --base REV [--rounds 3] [--frames 40]

The earlier revision is checked out with `git worktree` into a temporary directory. What is
measured: milliseconds per frame through the batch's own step and emit (frame, chunk decode,
delivery), tiny dev checkpoint, one torch thread, default sampling, every stream seeded.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs inside each tree; imports what either layout has.
MEASURE = r"""
import asyncio, json, sys, time
import torch
try:
    from server.engine.slots.qwen import LoopLimits, QwenBackend
except ImportError:
    from server.engine.qwen import LoopLimits, QwenBackend
from server.engine.jobs import SamplingParams, SynthesisJob
from server.engine.sequence import JobStream

model, rows, frames = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(1)
backend = QwenBackend.load(model, "cpu", 1, LoopLimits(max_batch=8, max_length=1024))
text = "Measuring the engine's frame on the CPU, the same text for every stream, a while long."
loop = asyncio.new_event_loop()
times = []
with torch.inference_mode():
    for repeat in range(2):  # the first round warms up
        for seed in range(rows):
            job = SynthesisJob("custom_voice", (text,), "English", frames, speaker="Vivian", seed=seed)
            backend.batch.start(JobStream(job, 600, loop, 10**9), 0.0, backend.row_sampling(SamplingParams()))
        while backend.batch.rows:
            started = time.perf_counter()
            ran = backend.batch.step()
            backend.batch.emit(lambda _sequence: None)
            if repeat and ran == rows:
                times.append((time.perf_counter() - started) * 1000)
print(json.dumps(times))
"""


def measure(tree: Path, model: Path, rows: int, frames: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(model), str(rows), str(frames)],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    times = json.loads(out.strip().splitlines()[-1])
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the earlier revision (a commit, tag or branch)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=40)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from server.devmodel import build_dev_checkpoint

    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.base], cwd=ROOT, check=True)
        try:
            model = build_dev_checkpoint(Path(scratch) / "custom_voice", "custom_voice", seed=0)
            results: dict[tuple[str, int], list[float]] = {}
            for _ in range(args.rounds):
                for rows in (1, 8):
                    for name, tree in (("base", base), ("this tree", ROOT)):
                        results.setdefault((name, rows), []).append(measure(tree, model, rows, args.frames))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=True)
    print(f"\nms per frame (step + emit), median of {args.rounds} rounds; base = {args.base}")
    print(f"{'batch':>5} | {'base':>8} | {'this tree':>9} | {'change':>7}")
    for rows in (1, 8):
        before = statistics.median(results[("base", rows)])
        after = statistics.median(results[("this tree", rows)])
        print(f"{rows:>5} | {before:>8.2f} | {after:>9.2f} | {(after / before - 1) * 100:>+6.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
