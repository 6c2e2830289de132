"""Time to first audio byte versus total time, streamed and not, on a dev checkpoint.

Run from the repository root::

    python bench/streaming.py [--model DIR] [--repeats 3] [--max-new-tokens 48]

Without --model a tiny random checkpoint is built in a temporary directory (its audio is
noise, but loading, generation, decoding, encoding and HTTP are all real). For each input
of 1, 3 and 6 sentences it requests the same audio (same seed) from a live server twice,
as a chunked stream and as one whole file, and prints the medians side by side.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.devmodel import build_dev_checkpoint
from tests.support.live_server import live_server

SENTENCE = "The server speaks this sentence as one segment of the stream."


def timed_request(client: httpx.Client, body: dict[str, object]) -> tuple[float, float, int]:
    """Seconds to the first audio byte, seconds to the last, and bytes received."""
    started = time.perf_counter()
    first: float | None = None
    size = 0
    with client.stream("POST", "/v1/audio/speech", json=body) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            if chunk and first is None:
                first = time.perf_counter() - started
            size += len(chunk)
    total = time.perf_counter() - started
    return (first if first is not None else total), total, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="checkpoint directory (default: build a tiny one)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=48, help="per-sentence cap, keeps CPU runs short")
    parser.add_argument("--format", default="pcm")
    parser.add_argument("--threads", type=int, default=1, help="TORCH_THREADS for the server (0 = torch default)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        model = args.model or build_dev_checkpoint(Path(scratch) / "custom_voice", "custom_voice")
        with live_server(
            model_id=str(model), preload_model=True, idle_timeout=0, max_new_tokens=args.max_new_tokens
        ) as srv:
            rows = []
            with srv.client(timeout=600) as client:
                timed_request(
                    client, {"model": "tts-1", "voice": "alloy", "input": "Warm up.", "response_format": "pcm"}
                )
                for sentences in (1, 3, 6):
                    text = " ".join([SENTENCE] * sentences)
                    measured: dict[bool, list[tuple[float, float, int]]] = {True: [], False: []}
                    for repeat in range(args.repeats):
                        for stream in (True, False):
                            body = {
                                "model": "tts-1",
                                "voice": "alloy",
                                "input": text,
                                "response_format": args.format,
                                "seed": repeat,
                                "stream": stream,
                            }
                            measured[stream].append(timed_request(client, body))
                    rows.append((sentences, measured))

    print(f"device: cpu  model: {'tiny dev checkpoint' if args.model is None else args.model}  format: {args.format}")
    print(f"{'sentences':>9} | {'mode':>8} | {'first byte s':>12} | {'total s':>8} | {'first/total':>11}")
    print("-" * 62)
    for sentences, measured in rows:
        for stream in (True, False):
            first = statistics.median(m[0] for m in measured[stream])
            total = statistics.median(m[1] for m in measured[stream])
            mode = "streamed" if stream else "whole"
            print(f"{sentences:>9} | {mode:>8} | {first:>12.3f} | {total:>8.3f} | {first / total:>11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
