"""Time to the first audio byte against the total, streamed and whole, on a dev checkpoint.

Run from the repository root::

    python bench/streaming.py [--model DIR] [--repeats 3] [--format pcm]

Without --model a tiny random checkpoint is built in a temporary directory (its audio is
noise, but loading, generation, decoding, encoding and HTTP are all real). For one 40-word
sentence, three sentences and six sentences it requests the same audio (same seed) from a
live server as a chunked stream and as one whole file, and prints the medians side by side,
with the request log's own first-chunk figures.
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
from tests.support.live_server import RecordCollector, live_server

FORTY_WORDS = (
    "On a quiet morning the old harbour town woke slowly, as fishing boats drifted back with "
    "their nets, gulls argued over scraps along the pier, and the baker opened his shutters to "
    "let the smell of fresh bread wander down every narrow street."
)
SENTENCES = (
    "The first sentence introduces the topic in about twenty words, which is an ordinary length.",
    "The second one carries the argument a little further and adds a detail worth hearing.",
    "The third sentence wraps the paragraph up and hands over to whatever comes next.",
    "A fourth sentence opens another paragraph with a new thought about the same topic.",
    "The fifth keeps going, because long inputs are exactly what streaming is for.",
    "And the sixth sentence ends the whole text with a short and simple conclusion.",
)
INPUTS = {
    "1 sentence, 40 words": FORTY_WORDS,
    "3 sentences": " ".join(SENTENCES[:3]),
    "6 sentences": " ".join(SENTENCES),
}


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
    parser.add_argument("--format", default="pcm")
    parser.add_argument("--threads", type=int, default=1, help="TORCH_THREADS for the server (0 = torch default)")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as scratch, RecordCollector().attached() as log:
        model = args.model or build_dev_checkpoint(Path(scratch) / "custom_voice", "custom_voice")
        with (
            live_server(model_id=str(model), preload_model=True, idle_timeout=0, torch_threads=args.threads) as srv,
            srv.client(timeout=600) as client,
        ):
            timed_request(client, {"model": "tts-1", "voice": "alloy", "input": "Warm up.", "response_format": "pcm"})
            for label, text in INPUTS.items():
                for stream in (True, False):
                    measured = []
                    for repeat in range(args.repeats):
                        body = {
                            "model": "tts-1",
                            "voice": "alloy",
                            "input": text,
                            "response_format": args.format,
                            "seed": repeat,
                            "stream": stream,
                        }
                        measured.append(timed_request(client, body))
                    line = log.requests("/v1/audio/speech")[-1]
                    rows.append((label, stream, measured, line))

    print(f"device: cpu  model: {'tiny dev checkpoint' if args.model is None else args.model}  format: {args.format}")
    print(
        f"{'input':>21} | {'mode':>8} | {'first byte s':>12} | {'total s':>8} | {'first/total':>11} | "
        f"{'audio s':>7} | {'segments':>8} | {'1st chunk frames':>16}"
    )
    print("-" * 112)
    for label, stream, measured, line in rows:
        first = statistics.median(m[0] for m in measured)
        total = statistics.median(m[1] for m in measured)
        mode = "streamed" if stream else "whole"
        print(
            f"{label:>21} | {mode:>8} | {first:>12.3f} | {total:>8.3f} | {first / total:>11.3f} | "
            f"{line['audio_seconds']:>7.2f} | {line['segments']:>8} | {line['first_chunk_frames']!s:>16}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
