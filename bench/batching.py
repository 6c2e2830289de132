"""Continuous batching under concurrency, side by side in one run, on a server process.

Run from the repository root::

    python bench/batching.py [--model DIR] [--rounds 3] [--threads 1]

Without --model a tiny random checkpoint is built in a temporary directory. Default server
settings (MAX_BATCH_SIZE 8) unless flags say otherwise. Every request streams pcm.

1. Throughput: 8 clients at once against the same 8 requests one after another: seconds of
   audio delivered per wall second.
2. First audio at concurrency 1, 4, 8 and 16 (all clients start together): p50 and p95.
3. Head of line: the first audio of a one-sentence request sent while a six-sentence request
   streams, against the same request alone.
4. The longest time running streams waited while newcomers were prefilled.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.server_process import direct_server
from bench.streaming import timed_request
from server.devmodel import build_dev_checkpoint

PARAGRAPH = (
    "Client {client} asks for a paragraph of its own. It has two sentences of an ordinary length, "
    "so that every stream runs for a while."
)
SIX = " ".join(f"This is sentence number {i} of a long answer that keeps streaming." for i in range(6))
SHORT = "A quick question."
BYTES_PER_SECOND = 24_000 * 2


def stream_request(url: str, body: dict[str, Any], start: threading.Event | None = None) -> tuple[float, float, int]:
    """Seconds to the first audio byte, seconds in total, bytes received; the request leaves
    when `start` is set (its connection is made before)."""
    with httpx.Client(base_url=url, timeout=600) as client:
        if start is not None:
            start.wait()
        return timed_request(client, body)


def body(client: int, text: str | None = None) -> dict[str, Any]:
    """An unseeded request, as most traffic is (seeded rows each draw from their own generator,
    which costs a little more per row)."""
    return {
        "model": "tts-1",
        "voice": "alloy",
        "response_format": "pcm",
        "input": text or PARAGRAPH.format(client=client),
    }


def at_once(server: str, bodies: list[dict[str, Any]]) -> tuple[float, list[tuple[float, float, int]]]:
    start = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
        futures = [pool.submit(stream_request, server, b, start) for b in bodies]
        time.sleep(0.2)  # let every client connect first (a bench, not a test: no assertion rides on it)
        began = time.perf_counter()
        start.set()
        results = [f.result() for f in futures]
    return time.perf_counter() - began, results


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="checkpoint directory (default: build a tiny one)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-batch-size", type=int, default=None, help="default: the server's default")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    env = {
        "DEVICE": args.device,
        "WARMUP": "false",
        "PRELOAD_MODEL": "true",
        "IDLE_TIMEOUT": "0",
        "TORCH_THREADS": str(args.threads),
        "MAX_QUEUE_DEPTH": "64",
        "AUDIO_CACHE_MAX": "0",  # every request is synthesised
        "LOG_LEVEL": "WARNING",
    }
    if args.max_batch_size:
        env["MAX_BATCH_SIZE"] = str(args.max_batch_size)

    with tempfile.TemporaryDirectory() as scratch:
        model = args.model or build_dev_checkpoint(Path(scratch) / "custom_voice", "custom_voice")
        with direct_server({**env, "MODEL_ID": str(model), "VOICES_DIR": str(Path(scratch) / "voices")}) as server:
            stream_request(server, body(99, "Warm up."))
            health = httpx.get(f"{server}/health").json()
            print(
                f"device: {args.device}  threads: {args.threads}  max batch: {health['max_batch_size']}  "
                f"model: {'tiny dev checkpoint' if args.model is None else model}"
            )

            # 1. throughput
            bodies = [body(c) for c in range(8)]
            sequential_s, sequential_audio = 0.0, 0
            concurrent_s, concurrent_audio = 0.0, 0
            for _ in range(args.rounds):
                began = time.perf_counter()
                for b in bodies:
                    sequential_audio += stream_request(server, b)[2]
                sequential_s += time.perf_counter() - began
                wall, results = at_once(server, bodies)
                concurrent_s += wall
                concurrent_audio += sum(r[2] for r in results)
            seq_rate = sequential_audio / BYTES_PER_SECOND / sequential_s
            con_rate = concurrent_audio / BYTES_PER_SECOND / concurrent_s
            print("\n1. 8 requests: audio seconds per wall second")
            print(f"{'one after another':>18} | {seq_rate:>6.2f}")
            print(f"{'8 at once':>18} | {con_rate:>6.2f}")
            print(f"{'ratio':>18} | {con_rate / seq_rate:>6.2f}")

            # 2. first audio by concurrency
            print("\n2. first audio byte (s) with N clients starting together")
            print(f"{'N':>3} | {'p50':>6} | {'p95':>6} | {'p50 / p50 at 1':>14}")
            base = None
            for clients in (1, 4, 8, 16):
                firsts = []
                for round_ in range(args.rounds):
                    _, results = at_once(server, [body(100 * round_ + c) for c in range(clients)])
                    firsts += [r[0] for r in results]
                p50 = statistics.median(firsts)
                base = base or p50
                print(f"{clients:>3} | {p50:>6.3f} | {percentile(firsts, 0.95):>6.3f} | {p50 / base:>14.2f}")

            # 3. head of line
            alone = [stream_request(server, body(7, SHORT))[0] for _ in range(args.rounds)]
            behind = []
            for round_ in range(args.rounds):
                with concurrent.futures.ThreadPoolExecutor(1) as pool:
                    long_one = pool.submit(stream_request, server, body(500 + round_, SIX))
                    time.sleep(0.5)  # the long request is streaming by now (a bench: no assertion)
                    behind.append(stream_request(server, body(7, SHORT))[0])
                    long_one.result()
            print("\n3. first audio byte (s) of a one-sentence request")
            print(f"{'alone':>26} | {statistics.median(alone):>6.3f}")
            print(f"{'while 6 sentences stream':>26} | {statistics.median(behind):>6.3f}")
            print(f"{'ratio':>26} | {statistics.median(behind) / statistics.median(alone):>6.2f}")

            # 4. stall
            print(
                f"\n4. longest wait of running streams for newcomers' prefill: "
                f"{httpx.get(f'{server}/health').json()['longest_prefill_stall_ms']:.1f} ms"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
