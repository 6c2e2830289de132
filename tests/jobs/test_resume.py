"""A job survives `kill -9` of the server: a real `python -m server` process is killed in the
middle of a job, started again on the same JOBS_DIR, and the job resumes at its unfinished
segments, generates none of the finished ones again, and ends with the bytes of an
uninterrupted run of the same job (same seed), which the restarted server then runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support.checkpoints import DevCheckpoint
from tests.support.live_server import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
BODY: dict[str, Any] = {
    "voice": "Ryan",
    "inputs": [{"input": f"Line {i} is short."} for i in range(8)],
    "response_format": "mp3",
    "seed": 21,
    "max_new_tokens": 16,
}


@contextmanager
def server_process(checkpoint: Path, jobs_dir: Path, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "MODEL_ID": str(checkpoint),
        "JOBS_DIR": str(jobs_dir),
        "JOBS_CONCURRENCY": "1",  # one segment at a time: the kill lands between finished ones
        "MAX_NEW_TOKENS": "16",
        "IDLE_TIMEOUT": "0",
        "TORCH_THREADS": "1",
        "PRELOAD_MODEL": "true",
        "WARMUP": "false",
        "VOICES_DIR": str(jobs_dir.parent / "voices"),
    }
    url = f"http://127.0.0.1:{port}"
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "server"], cwd=REPO_ROOT, env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, f"the server exited: {log.read_text()[-3000:]}"
            try:
                health = httpx.get(f"{url}/health", timeout=2).json()
                if health["models"]["custom_voice"]["loaded"]:
                    break
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.1)
        yield process, url
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=60)


def events(client: httpx.Client, job_id: str) -> Iterator[tuple[str, str]]:
    """The job's server-sent events as (event, data) pairs."""
    name = ""
    with client.stream("GET", f"/v1/audio/jobs/{job_id}/events") as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                yield name, line.removeprefix("data: ")


def finished(client: httpx.Client, job_id: str) -> dict[str, Any]:
    for name, _ in events(client, job_id):
        if name == "done":
            break
    job: dict[str, Any] = client.get(f"/v1/audio/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job
    return job


def segments(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = client.get(f"/v1/audio/jobs/{job_id}/segments").json()["data"]
    return data


def test_a_job_resumes_after_kill_9_and_ends_as_an_uninterrupted_run(
    dev_checkpoint: DevCheckpoint, tmp_path: Path
) -> None:
    checkpoint = dev_checkpoint("custom_voice")
    jobs_dir = tmp_path / "jobs"
    log = tmp_path / "server.log"

    with server_process(checkpoint, jobs_dir, log) as (process, url), httpx.Client(base_url=url, timeout=60) as client:
        created = client.post("/v1/audio/jobs", json=BODY)
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]
        # Killed as soon as the job's progress shows some segments done (and not all).
        for name, _ in events(client, job_id):
            job = client.get(f"/v1/audio/jobs/{job_id}").json()
            if name == "done" or job["progress"]["segments_done"] >= 3:
                break
        before = segments(client, job_id)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    done_before = {s["index"] for s in before if s["done"]}
    assert 3 <= len(done_before) < len(BODY["inputs"]), "the kill did not land in the middle of the job"

    with server_process(checkpoint, jobs_dir, log) as (_, url), httpx.Client(base_url=url, timeout=60) as client:
        resumed = client.get(f"/v1/audio/jobs/{job_id}").json()
        assert resumed["status"] in ("queued", "running", "succeeded")
        assert resumed["progress"]["segments_done"] >= len(done_before)
        job = finished(client, job_id)
        after = segments(client, job_id)
        assert all(s["done"] for s in after)
        # Nothing finished before the kill was generated again: each started exactly once.
        assert all(after[i]["attempts"] == 1 for i in done_before), after
        # The same job again, uninterrupted, on the restarted server: the same bytes.
        again = client.post("/v1/audio/jobs", json=BODY).json()
        finished(client, again["id"])
        resumed_bytes = client.get(f"/v1/audio/jobs/{job_id}/content").content
        fresh_bytes = client.get(f"/v1/audio/jobs/{again['id']}/content").content
    assert job["bytes"] == len(resumed_bytes) > 0
    assert resumed_bytes == fresh_bytes
