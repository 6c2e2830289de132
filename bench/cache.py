"""The output cache: time to answer a repeated phrase, from the model and from the cache.

Run from the repository root::

    python bench/cache.py [--model DIR] [--repeats 5] [--format mp3]

Without --model a tiny random checkpoint is built in a temporary directory. Each phrase is
requested once with `Cache-Control: no-cache` (synthesised, nothing kept), once plainly
(synthesised and kept) and then `--repeats` times (answered from the cache); the medians
are printed per phrase length, whole file and streamed.
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

PHRASES = {
    "short": "Your call is important to us.",
    "menu": "Press one for sales. Press two for support. Press three to hear these options again.",
}


def timed(client: httpx.Client, body: dict[str, object], headers: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    with client.stream("POST", "/v1/audio/speech", json=body, headers=headers) as response:
        response.raise_for_status()
        for _ in response.iter_bytes():
            pass
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="checkpoint directory (default: build a tiny one)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--format", default="mp3")
    parser.add_argument("--max-new-tokens", type=int, default=48, help="per-sentence cap, keeps CPU runs short")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        model = args.model or build_dev_checkpoint(Path(scratch) / "custom_voice", "custom_voice")
        with (
            live_server(
                model_id=str(model), preload_model=True, idle_timeout=0, max_new_tokens=args.max_new_tokens
            ) as srv,
            srv.client(timeout=600) as client,
        ):
            timed(client, {"model": "tts-1", "voice": "alloy", "input": "Warm up."}, {"Cache-Control": "no-cache"})
            for name, text in PHRASES.items():
                for stream in (False, True):
                    body = {"voice": "alloy", "input": text, "response_format": args.format, "stream": stream}
                    fresh = timed(client, body, {"Cache-Control": "no-cache"})
                    filled = timed(client, body)
                    hits = [timed(client, body) for _ in range(args.repeats)]
                    rows.append((name, "streamed" if stream else "whole", fresh, filled, statistics.median(hits)))
            stats = srv.health()["cache"]["output"]

    print(f"model: {'tiny dev checkpoint' if args.model is None else args.model}  format: {args.format}")
    print(f"{'phrase':>6} | {'mode':>8} | {'synthesised s':>13} | {'first, kept s':>13} | {'hit s':>7}")
    print("-" * 62)
    for name, mode, fresh, filled, hit in rows:
        print(f"{name:>6} | {mode:>8} | {fresh:>13.3f} | {filled:>13.3f} | {hit:>7.4f}")
    print(f"cache: {stats['size']} entries, {stats['bytes']} bytes, {stats['hits']} hits, {stats['misses']} misses")
    return 0


if __name__ == "__main__":
    sys.exit(main())
