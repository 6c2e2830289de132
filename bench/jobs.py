"""A long-audio job against the same sentences sent one at a time, side by side in one run, on
a server process.

Run from the repository root::

    python bench/jobs.py [--model DIR] [--sentences 100] [--threads 1]

Without --model a tiny random checkpoint is built in a temporary directory. The server runs
on the CPU with MAX_BATCH_SIZE 8 (and JOBS_CONCURRENCY left at its default, 7).

1. Wall time: the sentences as one job (`inputs`, one item each, no pauses) against the same
   sentences sent one after another to /v1/audio/speech, each with the seed its segment gets
   (job seed + index), so both produce the same audio (checked: the job's PCM is the serial
   PCM, concatenated). Printed as a table and as `serial/job ratio: N.NN`.
2. An interactive request's first audio (a one-sentence stream) on an idle server against the
   same while a job of those sentences runs: the medians, and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.server_process import direct_server
from bench.streaming import timed_request
from server.devmodel import build_dev_checkpoint

SEED = 1234
VOICE = "Ryan"
PROBE = {"model": "tts-1", "voice": "Vivian", "input": "A quick question.", "response_format": "pcm", "seed": 9}


def sentences(count: int) -> list[str]:
    return [f"Sentence number {i} tells one short part of the story." for i in range(count)]


def serial(client: httpx.Client, texts: list[str]) -> tuple[float, bytes]:
    started = time.perf_counter()
    pcm = bytearray()
    for i, text in enumerate(texts):
        body = {"voice": VOICE, "input": text, "response_format": "pcm", "seed": SEED + i, "stream": False}
        response = client.post("/v1/audio/speech", json=body)
        response.raise_for_status()
        pcm += response.content
    return time.perf_counter() - started, bytes(pcm)


def submit(client: httpx.Client, texts: list[str], seed: int) -> str:
    body: dict[str, Any] = {
        "voice": VOICE,
        "inputs": [{"input": text} for text in texts],
        "item_pause_ms": 0,
        "response_format": "pcm",
        "seed": seed,
    }
    response = client.post("/v1/audio/jobs", json=body)
    response.raise_for_status()
    job_id: str = response.json()["id"]
    return job_id


def wait_done(client: httpx.Client, job_id: str) -> dict[str, Any]:
    with client.stream("GET", f"/v1/audio/jobs/{job_id}/events") as events:
        for line in events.iter_lines():
            if line.startswith("event: done"):
                break
    job: dict[str, Any] = client.get(f"/v1/audio/jobs/{job_id}").json()
    if job["status"] != "succeeded":
        raise RuntimeError(f"job ended {job['status']}: {job['error']}")
    return job


def as_job(client: httpx.Client, texts: list[str]) -> tuple[float, bytes]:
    started = time.perf_counter()
    job_id = submit(client, texts, SEED)
    wait_done(client, job_id)
    elapsed = time.perf_counter() - started
    content = client.get(f"/v1/audio/jobs/{job_id}/content")
    content.raise_for_status()
    return elapsed, content.content


def first_audio(client: httpx.Client, probes: int) -> list[float]:
    return [timed_request(client, PROBE)[0] for _ in range(probes)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="checkpoint directory (default: build a tiny one)")
    parser.add_argument("--sentences", type=int, default=100)
    parser.add_argument("--probes", type=int, default=7, help="interactive requests timed on each side")
    parser.add_argument("--threads", type=int, default=1, help="TORCH_THREADS for the server (0 = torch default)")
    parser.add_argument("--concurrency", type=int, default=0, help="JOBS_CONCURRENCY (0: the server's default)")
    args = parser.parse_args()

    texts = sentences(args.sentences)
    with tempfile.TemporaryDirectory() as scratch:
        model = args.model or build_dev_checkpoint(Path(scratch) / "custom_voice", "custom_voice")
        env = {
            "MODEL_ID": str(model),
            "DEVICE": "cpu",
            "MAX_BATCH_SIZE": "8",
            "PRELOAD_MODEL": "true",
            "IDLE_TIMEOUT": "0",
            "TORCH_THREADS": str(args.threads),
            "VOICES_DIR": str(Path(scratch) / "voices"),
            "JOBS_DIR": str(Path(scratch) / "jobs"),
            "AUDIO_CACHE_MAX": "0",  # every request is generated
            "LOG_LEVEL": "WARNING",
            "JOBS_CONCURRENCY": str(args.concurrency),
        }
        with direct_server(env) as url, httpx.Client(base_url=url, timeout=600) as client:
            first_audio(client, 2)  # warm the paths once
            serial_s, serial_pcm = serial(client, texts)
            job_s, job_pcm = as_job(client, texts)
            idle = first_audio(client, args.probes)
            busy_job = submit(client, texts, SEED + 100_000)
            busy = first_audio(client, args.probes)
            busy_status = client.get(f"/v1/audio/jobs/{busy_job}").json()["status"]
            wait_done(client, busy_job)

    audio_s = len(serial_pcm) / 2 / 24_000
    print(f"{args.sentences} sentences, {audio_s:.1f} s of audio, tiny dev checkpoint, CPU, MAX_BATCH_SIZE 8")
    print()
    print("| run                                   | wall s | audio s / wall s |")
    print("|---------------------------------------|-------:|-----------------:|")
    print(f"| one at a time on /v1/audio/speech     | {serial_s:6.2f} | {audio_s / serial_s:16.2f} |")
    print(f"| one job (POST /v1/audio/jobs)         | {job_s:6.2f} | {audio_s / job_s:16.2f} |")
    print()
    print(f"serial/job ratio: {serial_s / job_s:.2f}")
    print(f"same audio both ways: {'yes' if serial_pcm == job_pcm else 'NO'}")
    print()
    idle_ms, busy_ms = statistics.median(idle) * 1000, statistics.median(busy) * 1000
    print("| interactive first audio (median)      |     ms |")
    print("|---------------------------------------|-------:|")
    print(f"| idle server                           | {idle_ms:6.1f} |")
    print(f"| {f'while a job runs ({busy_status} after)':<37} | {busy_ms:6.1f} |")
    print()
    print(f"busy/idle first-audio ratio: {busy_ms / idle_ms:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
