"""Encoder throughput: how many times faster than real time each format encodes.

Run from the repository root::

    python bench/encoders.py [--seconds 10] [--repeats 5] [--chunk 0.5]

"whole" encodes the clip in one call (``encode_whole``); "streamed" feeds it in
``--chunk``-second pieces through ``create_encoder(..., streaming=True)``, as a
streaming response does. Reported speed is the median over the repetitions,
single-threaded, so it is the per-request CPU cost on one core.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

# Make `server` importable when run as `python bench/encoders.py`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.audio import (
    SAMPLE_RATE,
    SUPPORTED_FORMATS,
    change_speed,
    create_encoder,
    encode_whole,
)


def speech_like(seconds: float, seed: int = 0) -> npt.NDArray[np.float32]:
    """Voiced-speech stand-in: gliding harmonic series, syllable-rate envelope, noise.

    A pure tone would flatter the lossy codecs (trivial to predict); this has
    a moving pitch, rich harmonics, pauses and a noise floor like real TTS output.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)  # slowly gliding pitch
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 25))
    envelope = np.clip(np.sin(2 * np.pi * 3.0 * t), 0.0, None) ** 0.5  # ~3 syllables/s + pauses
    pcm = 0.25 * voiced * envelope + 0.003 * rng.standard_normal(t.size)
    return pcm.astype(np.float32)


def encode_streamed(pcm: npt.NDArray[np.float32], fmt: str, chunk: int) -> bytes:
    encoder = create_encoder(fmt, streaming=True)
    pieces = [encoder.encode(pcm[i : i + chunk]) for i in range(0, pcm.size, chunk)]
    pieces.append(encoder.finish())
    return b"".join(pieces)


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: codec/library initialisation is not per-request cost
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length (default 10)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions (default 5)")
    parser.add_argument("--chunk", type=float, default=0.5, help="streamed chunk length in s (default 0.5)")
    args = parser.parse_args()

    pcm = speech_like(args.seconds)
    chunk = max(1, int(args.chunk * SAMPLE_RATE))
    print(f"{args.seconds:g} s of 24 kHz mono, streamed in {args.chunk:g} s chunks, median of {args.repeats}\n")
    header = (
        f"{'format':<7} {'whole xRT':>10} {'stream xRT':>11} {'whole bytes':>12} {'stream bytes':>13} {'kbit/s':>7}"
    )
    print(header)
    print("-" * len(header))
    for fmt in SUPPORTED_FORMATS:
        whole = encode_whole(pcm, fmt)
        streamed = encode_streamed(pcm, fmt, chunk)
        t_whole = median_seconds(functools.partial(encode_whole, pcm, fmt), args.repeats)
        t_stream = median_seconds(functools.partial(encode_streamed, pcm, fmt, chunk), args.repeats)
        kbps = len(whole) * 8 / args.seconds / 1000
        print(
            f"{fmt:<7} {args.seconds / t_whole:>10.0f} {args.seconds / t_stream:>11.0f}"
            f" {len(whole):>12,} {len(streamed):>13,} {kbps:>7.1f}"
        )

    print(f"\n{'speed':<7} {'xRT':>10}   (change_speed, Rubber Band via pedalboard)")
    for speed in (0.5, 1.5, 2.0):
        t = median_seconds(functools.partial(change_speed, pcm, speed), args.repeats)
        print(f"{speed:<7g} {args.seconds / t:>10.0f}")


if __name__ == "__main__":
    main()
