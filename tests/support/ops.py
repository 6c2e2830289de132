"""Shared pieces of the operations tests: the CORS origin they allow, and a real
`python -m server` process taken through a SIGTERM while a request is in flight."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.live_server import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
ALLOWED_ORIGIN = "https://app.example.com"
API_KEY = "sk-ops-test-secret-0123456789"
SHUTDOWN_GRACE = 60.0  # generous: the test machines may be busy
REQUEST_ID = "ops-sigterm-1"
# Several sentences, one model call each: long enough to be in flight when SIGTERM lands.
LONG_BODY = {
    "model": "tts-1",
    "voice": "Ryan",
    "input": " ".join(f"Sentence number {i} is here." for i in range(4)),
    "response_format": "pcm",
    "seed": 3,
}


@dataclass
class SigtermRun:
    """What happened around one SIGTERM sent to a real server process."""

    response: httpx.Response | None = None
    request_error: BaseException | None = None
    sigterm_to_exit_s: float = 0.0
    exit_code: int | None = None
    after_sigterm: str = ""  # "refused", "503" or what a new connection got instead
    log_lines: list[str] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_lines if line.startswith("{")]

    def messages(self, message: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if r["message"] == message]


def _wait_until(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except httpx.HTTPError:
            pass
        time.sleep(interval)
    return False


def _new_connection_outcome(base_url: str) -> str:
    try:
        with httpx.Client(base_url=base_url, timeout=2.0) as client:
            response = client.get("/health")
    except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
        return "refused"
    return "503" if response.status_code == 503 else f"status {response.status_code}"


def run_through_sigterm(checkpoint: Path, log_path: Path) -> SigtermRun:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "MODEL_ID": str(checkpoint),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "IDLE_TIMEOUT": "0",
        "MAX_NEW_TOKENS": "24",
        "TORCH_THREADS": "1",
        "PRELOAD_MODEL": "true",  # the package import and load happen before the request
        "WARMUP": "false",
        "API_KEYS": API_KEY,
        "SHUTDOWN_GRACE": str(SHUTDOWN_GRACE),
    }
    run = SigtermRun()
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server"], cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
        try:
            ready = _wait_until(lambda: httpx.get(f"{base_url}/health", timeout=2).status_code == 200, 120, 0.2)
            if not ready:
                raise RuntimeError("server process did not become ready")

            def speak() -> None:
                headers = {"Authorization": f"Bearer {API_KEY}", "X-Request-ID": REQUEST_ID}
                try:
                    run.response = httpx.post(
                        f"{base_url}/v1/audio/speech", json=LONG_BODY, headers=headers, timeout=120
                    )
                except BaseException as exc:  # kept for the test to report
                    run.request_error = exc

            speaker = threading.Thread(target=speak)
            speaker.start()
            # With API_KEYS set, /health shows the queue only to a caller with a key.
            keyed = {"Authorization": f"Bearer {API_KEY}"}
            in_flight = _wait_until(
                lambda: httpx.get(f"{base_url}/health", headers=keyed, timeout=2).json()["queue_depth"] == 1, 30
            )
            if not in_flight:
                raise RuntimeError("the request never showed up in the queue")
            proc.send_signal(signal.SIGTERM)
            sent = time.monotonic()
            # Poll with fresh connections until the server stops taking them.
            deadline = sent + 5
            run.after_sigterm = _new_connection_outcome(base_url)
            while run.after_sigterm.startswith("status") and time.monotonic() < deadline:
                time.sleep(0.05)
                run.after_sigterm = _new_connection_outcome(base_url)
            speaker.join(timeout=SHUTDOWN_GRACE + 30)
            run.exit_code = proc.wait(timeout=SHUTDOWN_GRACE + 30)
            run.sigterm_to_exit_s = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    run.log_lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    return run
