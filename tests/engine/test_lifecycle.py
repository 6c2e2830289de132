"""Model lifecycle and queue behaviour, observed through a live server on the real engine:
lazy load, idle unload and reload, no unload mid-request, one load for concurrent first
requests, queue full, timeouts, and a model that cannot load."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.live_server import LiveServer, live_server

SHORT = {"model": "tts-1", "voice": "Ryan", "input": "Hi.", "response_format": "pcm", "seed": 1}
# Twenty short sentences: twenty segments, each a separate model call.
LONG = {**SHORT, "input": " ".join(f"Sentence number {i} is here." for i in range(20))}
# Six: long enough to be seen in flight, short enough to keep the suite quick.
MEDIUM = {**SHORT, "input": " ".join(f"Sentence number {i} is here." for i in range(6))}


def speak(server: LiveServer, body: dict[str, Any]) -> httpx.Response:
    with server.client() as client:
        return client.post("/v1/audio/speech", json=body)


def slot(server: LiveServer) -> dict[str, Any]:
    models: dict[str, Any] = server.health()["models"]
    return dict(models["custom_voice"])


def wait_for(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def test_lazy_load_then_idle_unload_then_reload(custom_voice_dir: Path) -> None:
    with live_server(model_id=str(custom_voice_dir), idle_timeout=1.0) as server:
        assert slot(server)["loaded"] is False
        assert slot(server)["load_count"] == 0
        assert speak(server, SHORT).status_code == 200
        assert slot(server)["loaded"] is True
        assert wait_for(lambda: not slot(server)["loaded"], timeout=10)
        assert slot(server)["unload_count"] == 1
        assert speak(server, SHORT).status_code == 200
        state = slot(server)
        assert state["loaded"] is True
        assert state["load_count"] == 2


def test_no_idle_unload_while_a_request_is_in_flight(custom_voice_dir: Path) -> None:
    with live_server(model_id=str(custom_voice_dir), idle_timeout=0.3, max_new_tokens=24) as server:
        assert speak(server, SHORT).status_code == 200  # loads the model
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            future = pool.submit(speak, server, MEDIUM)
            assert wait_for(lambda: server.health()["queue_depth"] == 1, timeout=10)
            seen_unloaded_in_flight = False
            while not future.done():
                health = server.health()
                if health["queue_depth"] == 1 and not health["models"]["custom_voice"]["loaded"]:
                    seen_unloaded_in_flight = True
                time.sleep(0.05)
            assert future.result().status_code == 200
        assert not seen_unloaded_in_flight
        assert slot(server)["unload_count"] == 0 or slot(server)["load_count"] == 1
        # Once idle, it does unload.
        assert wait_for(lambda: not slot(server)["loaded"], timeout=10)


def test_concurrent_first_requests_load_once(custom_voice_dir: Path) -> None:
    with live_server(model_id=str(custom_voice_dir), idle_timeout=0) as server:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            responses = list(pool.map(lambda _: speak(server, SHORT), range(4)))
        assert [r.status_code for r in responses] == [200] * 4
        assert slot(server)["load_count"] == 1


def test_queue_full_is_503_with_retry_after(custom_voice_dir: Path) -> None:
    with live_server(model_id=str(custom_voice_dir), max_queue_depth=1, max_new_tokens=24) as server:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            first = pool.submit(speak, server, MEDIUM)
            assert wait_for(lambda: server.health()["queue_depth"] == 1, timeout=10)
            rejected = speak(server, SHORT)
            assert first.result().status_code == 200
        assert rejected.status_code == 503
        assert rejected.headers["retry-after"] == "1"
        error = rejected.json()["error"]
        assert error["code"] == "server_busy"
        assert error["type"] == "server_error"
        assert server.health()["queue_depth"] == 0
        assert speak(server, SHORT).status_code == 200


def test_timeout_is_504_the_job_is_cancelled_and_the_server_keeps_serving(custom_voice_dir: Path, request_log) -> None:  # type: ignore[no-untyped-def]
    with live_server(
        model_id=str(custom_voice_dir), preload_model=True, request_timeout=2.0, max_new_tokens=16
    ) as server:
        started = time.monotonic()
        response = speak(server, {**LONG, "stream": False})
        assert response.status_code == 504
        assert time.monotonic() - started < 10
        assert response.json()["error"]["code"] == "timeout"
        # Cancelled, not left running: the queue empties and nothing more is synthesised.
        assert wait_for(lambda: server.health()["queue_depth"] == 0, timeout=2)
        [line] = request_log.requests("/v1/audio/speech")
        assert line["status"] == 504
        assert line["segments_done"] < line["segments"] == 20
        assert speak(server, SHORT).status_code == 200


def test_model_that_cannot_load_is_503_with_the_reason(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with live_server(model_id=str(missing)) as server:
        for _ in range(2):  # the second request tries to load again
            response = speak(server, SHORT)
            assert response.status_code == 503
            error = response.json()["error"]
            assert error["code"] == "model_unavailable"
            assert "no-such-model" in error["message"]
        health = server.health()
        assert health["status"] == "degraded"
        state = health["models"]["custom_voice"]
        assert state["loaded"] is False
        assert state["last_error"]
        assert state["load_count"] == 0
