"""Ray Serve against the direct server: the proxy's cost per request, and throughput with
one and two replicas.

Run from the repository root (needs the `ray` extra: uv sync --all-extras)::

    python bench/ray_serve.py [--model DIR] [--repeats 5] [--clients 4] [--requests 3]

Without --model a tiny random checkpoint is built in a temporary directory. The direct
server is `python -m server` in its own process (as `scripts/serve` runs it); the Ray side
is a local cluster started here, its replicas each a process of their own with the same
settings (TORCH_THREADS=1, the model preloaded).

1. Overhead: the same streamed request (pcm, 3 sentences, same seed) sent alternately to
   the direct server and through Serve's proxy to one replica; medians of time to first
   audio byte and of the total.
2. Throughput: --clients clients each send --requests single-sentence requests back to
   back, to the direct server, then to 1 and to 2 replicas, for each --batch
   (MAX_BATCH_SIZE); seconds of audio per wall second and median latency. On one machine
   the replicas share its cores, so the table shows the method (and the proxy's cost
   under load) more than a GPU cluster's gain.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.server_process import direct_server, wait_ready
from server.cluster.deployment import ClusterOptions, speech_app
from server.config import load_settings
from server.devmodel import build_dev_checkpoint
from tests.support.live_server import free_port

SENTENCE = "The server speaks this sentence as one segment of the stream."
CLIENT_SENTENCE = "Client {client} asks for sentence {n}, which is of an ordinary length."


def client_run(base_url: str, client: int, requests: int) -> tuple[float, list[float]]:
    """Audio seconds received and each request's latency."""
    audio = 0.0
    latencies = []
    with httpx.Client(base_url=base_url, timeout=600) as http:
        for n in range(requests):
            body = {"model": "tts-1", "voice": "alloy", "response_format": "pcm"}
            started = time.perf_counter()
            response = http.post("/v1/audio/speech", json={**body, "input": CLIENT_SENTENCE.format(client=client, n=n)})
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


def server_env(model: Path, voices: Path, args: argparse.Namespace) -> dict[str, str]:
    return {
        "MODEL_ID": str(model),
        "DEVICE": "cpu",
        "WARMUP": "false",
        "TORCH_THREADS": str(args.threads),
        "PRELOAD_MODEL": "true",
        "IDLE_TIMEOUT": "0",
        "MAX_NEW_TOKENS": str(args.max_new_tokens),
        "MAX_QUEUE_DEPTH": str(max(16, args.clients * 2)),
        "VOICES_DIR": str(voices),
        "LOG_LEVEL": "WARNING",
    }


def timed_stream(client: httpx.Client, url: str, body: dict[str, object]) -> tuple[float, float]:
    """Seconds to the first audio byte and to the last."""
    started = time.perf_counter()
    first: float | None = None
    with client.stream("POST", f"{url}/v1/audio/speech", json=body) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():
            if chunk and first is None:
                first = time.perf_counter() - started
    total = time.perf_counter() - started
    return (first if first is not None else total), total


def throughput(url: str, clients: int, requests: int) -> tuple[float, float, float]:
    client_run(url, 0, 1)  # warm-up
    return measure(url, clients, requests)


def measure_overhead(direct_url: str, ray_url: str, repeats: int, into: dict[str, list[tuple[float, float]]]) -> None:
    """The same seeded stream, alternately direct and through the proxy; round 0 warms up."""
    body = {"model": "tts-1", "voice": "alloy", "input": " ".join([SENTENCE] * 3), "response_format": "pcm"}
    with httpx.Client(timeout=600) as client:
        for repeat in range(repeats + 1):
            for name, url in (("direct", direct_url), ("ray", ray_url)):
                timing = timed_stream(client, url, {**body, "seed": repeat})
                if repeat:
                    into[name].append(timing)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4], help="MAX_BATCH_SIZE values")
    parser.add_argument("--requests", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1, help="TORCH_THREADS per server or replica")
    args = parser.parse_args()

    import ray  # after server.cluster (imported above), which keeps Ray's workers in this environment
    from ray import serve

    overhead: dict[str, list[tuple[float, float]]] = {"direct": [], "ray": []}
    rows: list[tuple[int, str, float, float, float]] = []
    with tempfile.TemporaryDirectory() as scratch:
        model = args.model or build_dev_checkpoint(Path(scratch) / "custom_voice", "custom_voice")
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
        port = free_port()
        ray_url = f"http://127.0.0.1:{port}"
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        try:
            for batch in args.batch:
                env = {**server_env(model, Path(scratch) / "voices", args), "MAX_BATCH_SIZE": str(batch)}
                settings = load_settings(**{name.lower(): value for name, value in env.items()})
                serve.run(speech_app(ClusterOptions(replicas=1), settings), name="bench", route_prefix="/")
                wait_ready(ray_url)
                with direct_server(env) as direct_url:
                    if not overhead["direct"]:
                        measure_overhead(direct_url, ray_url, args.repeats, overhead)
                    rows.append((batch, "direct server", *throughput(direct_url, args.clients, args.requests)))
                rows.append((batch, "ray, 1 replica", *throughput(ray_url, args.clients, args.requests)))
                serve.run(speech_app(ClusterOptions(replicas=2), settings), name="bench", route_prefix="/")
                rows.append((batch, "ray, 2 replicas", *throughput(ray_url, args.clients, args.requests)))
        finally:
            serve.shutdown()
            ray.shutdown()

    print(f"device: cpu ({os.cpu_count()} cores)  model: {'tiny dev checkpoint' if args.model is None else args.model}")
    print(f"\nsame streamed request (pcm, 3 sentences), median of {args.repeats}")
    print(f"{'path':>13} | {'first byte s':>12} | {'total s':>8}")
    print("-" * 40)
    for name, timings in overhead.items():
        first = statistics.median(t[0] for t in timings)
        total = statistics.median(t[1] for t in timings)
        print(f"{'direct' if name == 'direct' else 'ray proxy':>13} | {first:>12.3f} | {total:>8.3f}")
    print(f"\n{args.clients} clients x {args.requests} single-sentence requests")
    print(f"{'batch':>5} | {'served by':>15} | {'wall s':>7} | {'audio s / s':>11} | {'median latency s':>16}")
    print("-" * 68)
    for batch, name, wall, rate, latency in rows:
        print(f"{batch:>5} | {name:>15} | {wall:>7.2f} | {rate:>11.2f} | {latency:>16.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
