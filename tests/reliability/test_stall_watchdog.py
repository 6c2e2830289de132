"""The stall watchdog with the inference thread held by the test control: /health and new
requests answer 503 while it is stuck, the engine recovers when it is freed, a long model
load never trips it, and a server that stays stuck exits with status 70 (a subprocess)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.engine.watchdog import EXIT_STALLED
from tests.support.engine_control import inference_held, wait_until
from tests.support.live_server import LiveServer, dev_settings, live_server

TIMEOUT = 2.0
REPO = Path(__file__).resolve().parents[2]
BODY = {"model": "tts-1", "voice": "alloy", "input": "Still here?", "stream": False}


@pytest.fixture
def watched(custom_voice_dir: Path, base_dir: Path, tmp_path: Path) -> Iterator[LiveServer]:
    """A server whose watchdog trips after TIMEOUT and never exits (the grace is an hour)."""
    settings = dev_settings(custom_voice_dir, base_dir, tmp_path / "voices")
    with live_server(**settings, engine_stall_timeout=TIMEOUT, engine_stall_grace=3600) as running:
        yield running


def health(server: LiveServer) -> httpx.Response:
    with server.client() as client:
        return client.get("/health")


def test_a_held_inference_thread_turns_health_and_new_requests_into_503(watched: LiveServer) -> None:
    assert health(watched).status_code == 200
    with inference_held(watched):
        wait_until(lambda: health(watched).status_code == 503)
        stalled = health(watched).json()
        assert stalled["status"] == "stalled" and "no progress" in stalled["reason"]
        with watched.client() as client:
            refused = client.post("/v1/audio/speech", json=BODY)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "engine_stalled"
    wait_until(lambda: health(watched).status_code == 200)  # it recovered: no restart needed
    with watched.client() as client:
        assert client.post("/v1/audio/speech", json=BODY).status_code == 200


def test_a_long_model_load_does_not_trip_it(watched: LiveServer) -> None:
    slot = watched.engine.slots["custom_voice"]
    assert slot.backend is None
    gate = threading.Event()
    load = slot._loader

    def slow_load(model_id: str) -> Any:
        gate.wait(120)  # a load far longer than ENGINE_STALL_TIMEOUT
        return load(model_id)

    slot._loader = slow_load
    answers: list[int] = []
    speaker = threading.Thread(target=lambda: answers.append(speak(watched)))
    speaker.start()
    try:
        wait_until(lambda: slot.state == "loading")
        watchdog = watched.engine.watchdog
        seen = watchdog.checks
        # Enough passes of the watchdog for the load to have lasted well past the timeout.
        wait_until(lambda: watchdog.checks >= seen + 3 * TIMEOUT / watchdog.period)
        assert watched.engine.stalled is None
        assert health(watched).status_code == 200
    finally:
        gate.set()
        speaker.join(120)
    assert answers == [200]


def speak(server: LiveServer) -> int:
    with server.client() as client:
        return client.post("/v1/audio/speech", json=BODY).status_code


# A child of its own: the watchdog ends the process (status 70), so nothing can run after it in
# that interpreter, and no other check of this file needs a fresh one to run before it.
STUCK_SERVER = """
import sys, threading
from pathlib import Path
from tests.support.engine_control import inference_held
from tests.support.live_server import dev_settings, live_server

settings = dev_settings(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
with live_server(**settings, engine_stall_timeout=0.5, engine_stall_grace=0.5) as server:
    with inference_held(server):
        threading.Event().wait(120)
sys.exit(0)
"""


def test_a_server_that_stays_stuck_exits_non_zero(custom_voice_dir: Path, base_dir: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", STUCK_SERVER, str(custom_voice_dir), str(base_dir), str(tmp_path / "voices")],
        cwd=REPO,
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == EXIT_STALLED, done.stderr.decode()[-2000:]
    assert b"engine stalled" in done.stderr
