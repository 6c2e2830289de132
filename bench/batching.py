"""Throughput under concurrency with and without batching, side by side in one run.

Run from the repository root::

    python bench/batching.py [--model DIR] [--clients 1 4 8] [--batch 1 4 8] [--requests 3]

For each MAX_BATCH_SIZE a live server runs on a dev checkpoint (a tiny random one unless
--model is given); for each client count, that many clients each send --requests
single-sentence requests back to back (unseeded, pcm). The table gives wall time, seconds
of audio produced per wall second, and the median request latency.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.devmodel import build_dev_checkpoint
from tests.support.live_server import live_server

SENTENCE = "Client {client} asks for sentence {n}, which is of an ordinary length."


def client_run(base_url: str, client: int, requests: int) -> tuple[float, list[float]]:
    """Audio seconds received and each request's latency."""
    audio = 0.0
    latencies = []
    with httpx.Client(base_url=base_url, timeout=600) as http:
        for n in range(requests):
            body = {"model": "tts-1", "voice": "alloy", "response_format": "pcm"}
            started = time.perf_counter()
            response = http.post("/v1/audio/speech", json={**body, "input": SENTENCE.format(client=client, n=n)})
            response.raise_for_status()
            latencies.append(time.perf_counter() - started)
            audio += len(response.content) / 2 / 24_000
    return audio, latencies


def measure(base_url: str, clients: int, requests: int) -> tuple[float, float, float]:
    """Wall seconds, audio seconds per wall second and median latency of `clients` clients
    sending `requests` requests each, back to back."""
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        runs = list(pool.map(lambda c: client_run(base_url, c, requests), range(clients)))
    wall = time.perf_counter() - started
    audio = sum(run[0] for run in runs)
    latency = statistics.median(lat for run in runs for lat in run[1])
    return wall, audio / wall, latency


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--requests", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="TORCH_THREADS (0 = torch default)")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        model = args.model or build_dev_checkpoint(Path(scratch) / "custom_voice", "custom_voice")
        for batch in args.batch:
            settings = {
                "preload_model": True,
                "idle_timeout": 0,
                "max_batch_size": batch,
                "max_queue_depth": max(args.clients) * 2,
                "torch_threads": args.threads,
            }
            with live_server(model_id=str(model), **settings) as server:
                client_run(server.base_url, 0, 1)  # warm-up
                for clients in args.clients:
                    rows.append((batch, clients, *measure(server.base_url, clients, args.requests)))

    print(f"device: cpu  model: {'tiny dev checkpoint' if args.model is None else args.model}")
    print(f"{'batch':>5} | {'clients':>7} | {'wall s':>7} | {'audio s / s':>11} | {'median latency s':>16}")
    print("-" * 60)
    for batch, clients, wall, throughput, latency in rows:
        print(f"{batch:>5} | {clients:>7} | {wall:>7.2f} | {throughput:>11.2f} | {latency:>16.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
