"""What the runaway guards cost per frame, side by side with the guards off, in one run.

Run from the repository root::

    python bench/guards.py [--model DIR] [--device cpu] [--frames 60] [--threads 1]

1. The guards alone: milliseconds per call of `GuardBank.observe` (the guards' work for one
   frame) at batch 1 and 8, with the default settings.
2. The whole frame: milliseconds per `ActiveBatch.step` for batch 1 and 8 with the default
   guards and with every guard off (the same checkpoint, text and seeds; a checkpoint that
   never stops, so every row runs every frame).
Without --model a tiny random checkpoint that never stops is built in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.devmodel import build_dev_checkpoint
from server.engine.frame.guards import GuardBank, GuardLimits
from server.engine.jobs import SynthesisJob
from server.engine.sequence import JobStream
from server.engine.slots.qwen import LoopLimits, QwenBackend

TEXT = "The guards look at every frame after the text of a segment has been fed."
OFF = GuardLimits(silence_frames=0, loop_frames=0, tail_ratio=0)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def guards_alone(batch: int, device: str, calls: int = 500) -> float:
    table = torch.zeros(3072, dtype=torch.bool, device=device)
    table[:8] = True
    bank = GuardBank(GuardLimits(), batch, table)
    slots = list(range(batch))
    for slot in slots:
        bank.reset(slot, 20)
    tokens = torch.randint(0, 2048, (calls, batch), device=device)
    done = torch.ones(batch, dtype=torch.bool, device=device)
    for i in range(20):
        bank.observe(slots, tokens[i], done)
    sync(device)
    started = time.perf_counter()
    for i in range(calls):
        bank.observe(slots, tokens[i], done)
    sync(device)
    return (time.perf_counter() - started) * 1000 / calls


def frame_ms(backend: QwenBackend, batch: int, frames: int, device: str) -> float:
    loop = asyncio.new_event_loop()
    rows = []
    with torch.inference_mode():
        for i in range(batch):
            job = SynthesisJob(
                slot="custom_voice",
                segments=(TEXT,),
                language="english",
                token_cap=frames + 40,
                speaker="vivian",
                seed=i,
            )
            stream = JobStream(job, 600, loop, max_ahead=10**9)
            rows.append(backend.batch.start(stream, 0.0, backend.row_sampling(job.sampling)))
        for _ in range(5):
            backend.batch.step()
        sync(device)
        times = []
        for _ in range(frames):
            started = time.perf_counter()
            backend.batch.step()
            sync(device)
            times.append((time.perf_counter() - started) * 1000)
        for sequence in rows:
            backend.batch.remove(sequence)
    loop.close()
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a checkpoint directory (default: a tiny one that never stops)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or build_dev_checkpoint(Path(tmp) / "endless", "custom_voice", behaviour="endless")
        print("| batch | guards alone, ms per frame |")
        print("|---|---|")
        for batch in (1, 8):
            print(f"| {batch} | {guards_alone(batch, args.device):.3f} |")
        print()
        print("| batch | frame, guards off (ms) | frame, guards on (ms) | ratio |")
        print("|---|---|---|---|")
        backends = {
            name: QwenBackend.load(str(model), args.device, limits=LoopLimits(max_batch=8, max_length=1024, guards=g))
            for name, g in (("off", OFF), ("on", GuardLimits()))
        }
        for batch in (1, 8):
            off = frame_ms(backends["off"], batch, args.frames, args.device)
            on = frame_ms(backends["on"], batch, args.frames, args.device)
            print(f"| {batch} | {off:.2f} | {on:.2f} | {on / off:.3f} |")
        for backend in backends.values():
            backend.release()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
