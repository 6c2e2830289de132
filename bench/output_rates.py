"""What `sample_rate` and the gain fields cost and change, on the audio path alone.

Run from the repository root::

    python bench/output_rates.py [--seconds 10] [--repeats 5]

A speech-like test signal (noise shaped by a syllable-rate envelope, -20 dBFS RMS) stands in
for model audio. For each allowed rate: the streaming
resampler's CPU time per second of audio when fed engine-sized chunks (2 frames, then 4, 8,
up to 24, as the streamed responses get them), its time on the whole utterance at once, the
largest difference between the two (zero: no seams), and the pcm bytes per audio second.
Then, for each gain, the level (RMS and peak in dBFS) and the share of samples that clip.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.audio.dsp import SAMPLE_RATE, float_to_int16
from server.audio.resample import ALLOWED_SAMPLE_RATES, StreamResampler, resample_whole

FRAME = 1920


def speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 4.0 * t)) ** 2  # about four syllables a second
    noise = np.convolve(rng.standard_normal(n), np.ones(8) / 8, mode="same")  # darker than white
    pcm = noise * envelope
    return (0.1 * pcm / np.sqrt(np.mean(pcm**2))).astype(np.float32)  # -20 dBFS RMS


def engine_chunks(pcm: np.ndarray) -> list[np.ndarray]:
    sizes, frames, start = [], 2, 0
    while start < pcm.shape[0]:
        sizes.append(pcm[start : start + frames * FRAME])
        start += frames * FRAME
        frames = min(frames * 2, 24)
    return sizes


def chunked(pcm: np.ndarray, rate: int) -> np.ndarray:
    resampler = StreamResampler(rate)
    parts = [resampler.process(chunk) for chunk in engine_chunks(pcm)]
    return np.concatenate([*parts, resampler.finish()])


def best_ms(run: object, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()  # type: ignore[operator]
        times.append((time.perf_counter() - started) * 1000)
    return min(times)


def dbfs(value: float) -> float:
    return 20 * np.log10(max(value, 1e-12))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    pcm = speech_like(args.seconds)

    print(f"resampling {args.seconds:g} s of audio from 24 kHz (soxr HQ, best of {args.repeats})")
    print(f"{'rate':>6} {'chunked ms/s':>13} {'whole ms/s':>11} {'max |diff|':>11} {'pcm bytes/s':>12}")
    for rate in ALLOWED_SAMPLE_RATES:
        streamed = chunked(pcm, rate)
        whole = resample_whole(pcm, rate)
        diff = float(np.max(np.abs(streamed - whole))) if streamed.shape == whole.shape else float("nan")
        chunk_ms = best_ms(lambda rate=rate: chunked(pcm, rate), args.repeats) / args.seconds
        whole_ms = best_ms(lambda rate=rate: resample_whole(pcm, rate), args.repeats) / args.seconds
        print(f"{rate:>6} {chunk_ms:>13.3f} {whole_ms:>11.3f} {diff:>11.2e} {rate * 2:>12}")

    print()
    print("one gain per request: level of the int16 output")
    print(f"{'gain_db':>8} {'rms dBFS':>9} {'peak dBFS':>10} {'clipped %':>10}")
    for gain_db in (-12.0, -6.0, 0.0, 6.0, 12.0):
        scaled = pcm * np.float32(10 ** (gain_db / 20))
        out = float_to_int16(scaled).astype(np.float64) / 32768
        clipped = float(np.mean(np.abs(scaled) >= 32767 / 32768)) * 100
        rms = float(np.sqrt(np.mean(out**2)))
        print(f"{gain_db:>8.1f} {dbfs(rms):>9.2f} {dbfs(float(np.max(np.abs(out)))):>10.2f} {clipped:>10.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
