"""Model lifecycle and queue behaviour, observed through a live server on the real engine:
lazy load, idle unload and reload, no unload mid-request, one load for concurrent first
requests, queue full, timeouts, and a model that cannot load.

Nothing here depends on how fast the machine is: jobs are held back by occupying the
inference thread or by a consumer that stops reading, and states are waited for, not slept for.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.engine.errors import JobTimeoutError
from server.engine.jobs import SynthesisJob
from server.speech.requests import SpeechRequest
from tests.support.engine_control import idle_sweep_after_now, inference_held, on_server_loop, wait_until
from tests.support.live_server import LiveServer, RecordCollector, live_server

SHORT = {"model": "tts-1", "voice": "Ryan", "input": "Hi.", "response_format": "pcm", "seed": 1}
# Twenty short sentences: more audio than any deadline in these tests lets through.
LONG = {**SHORT, "input": " ".join(f"Sentence number {i} is here." for i in range(20))}
# Six sentences: long enough to be seen in flight, short enough to keep the suite quick.
MEDIUM = {**SHORT, "input": " ".join(f"Sentence number {i} is here." for i in range(6))}


def speak(server: LiveServer, body: dict[str, Any]) -> httpx.Response:
    with server.client() as client:
        return client.post("/v1/audio/speech", json=body)


def slot(server: LiveServer) -> dict[str, Any]:
    models: dict[str, Any] = server.health()["models"]
    return dict(models["custom_voice"])


def plan_job(server: LiveServer, body: dict[str, Any]) -> SynthesisJob:
    """The engine job the speech service makes of a request body."""
    service = server.app.state.speech
    plan = on_server_loop(server, service.plan_request(SpeechRequest.model_validate(body), endpoint="test"))
    job: SynthesisJob = plan.job
    return job


async def next_item(stream: AsyncIterator[Any]) -> Any:
    return await anext(stream)


async def drain(stream: AsyncIterator[Any], into: list[Any]) -> None:
    async for item in stream:
        into.append(item)


def test_lazy_load_then_idle_unload_then_reload(custom_voice_dir: Path) -> None:
    with live_server(model_id=str(custom_voice_dir), idle_timeout=1.0) as server:
        assert slot(server)["loaded"] is False
        assert slot(server)["load_count"] == 0
        assert speak(server, SHORT).status_code == 200
        # Counts, not the loaded flag: on a slow machine the model may idle out before we look.
        assert slot(server)["load_count"] == 1
        wait_until(lambda: not slot(server)["loaded"])
        assert slot(server)["unload_count"] == 1
        assert speak(server, SHORT).status_code == 200
        assert slot(server)["load_count"] == 2


def test_no_idle_unload_while_a_job_has_work_left(custom_voice_dir: Path) -> None:
    """A job whose consumer has stopped reading keeps its model however long it waits: the
    consumer takes the first audio, then stalls for many idle timeouts and unloader passes
    while the job still has sentences to synthesise; the engine's own record shows no unload.
    Once the rest is consumed and the job ends, the model does idle out."""
    idle = 0.3
    with live_server(
        model_id=str(custom_voice_dir), idle_timeout=idle, preload_model=True, max_new_tokens=24
    ) as server:
        engine = server.engine
        model_slot = engine.slots["custom_voice"]
        job = plan_job(server, MEDIUM)
        stream = engine.synthesize(job)
        received = [on_server_loop(server, next_item(stream))]
        for _ in range(3):
            wait_until(lambda: time.monotonic() - model_slot.last_used > 2 * idle)
            idle_sweep_after_now(server)
            assert engine.depth == 1 and model_slot.in_flight == 1
            assert model_slot.backend is not None
            assert model_slot.stats.unload_count == 0
        on_server_loop(server, drain(stream, received))
        ends = [chunk.segment for chunk in received if chunk.segment_end]
        assert ends == list(range(len(job.segments)))  # every segment was generated to its end
        assert model_slot.stats.unload_count == 0
        wait_until(lambda: model_slot.stats.unload_count == 1)
        assert engine.depth == 0


def test_concurrent_first_requests_load_once(custom_voice_dir: Path) -> None:
    with live_server(model_id=str(custom_voice_dir), idle_timeout=0) as server:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            responses = list(pool.map(lambda _: speak(server, SHORT), range(4)))
        assert [r.status_code for r in responses] == [200] * 4
        assert slot(server)["load_count"] == 1


def test_queue_full_is_503_with_retry_after(custom_voice_dir: Path) -> None:
    with live_server(model_id=str(custom_voice_dir), max_queue_depth=1, max_new_tokens=24) as server:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            with inference_held(server):
                first = pool.submit(speak, server, MEDIUM)
                wait_until(lambda: server.engine.depth == 1)  # admitted; cannot finish while held
                rejected = speak(server, SHORT)
            assert first.result().status_code == 200
        assert rejected.status_code == 503
        assert rejected.headers["retry-after"] == "1"
        error = rejected.json()["error"]
        assert error["code"] == "server_busy"
        assert error["type"] == "server_error"
        assert server.health()["queue_depth"] == 0
        assert speak(server, SHORT).status_code == 200


def test_timeout_is_504_and_the_server_keeps_serving(custom_voice_dir: Path, request_log: RecordCollector) -> None:
    with live_server(
        model_id=str(custom_voice_dir), preload_model=True, request_timeout=1.0, max_new_tokens=16
    ) as server:
        with inference_held(server):  # the job waits past its deadline, however fast the machine
            response = speak(server, {**LONG, "stream": False})
        assert response.status_code == 504
        assert response.json()["error"]["code"] == "timeout"
        [line] = request_log.requests("/v1/audio/speech")
        assert line["status"] == 504
        assert line["segments_done"] == 0
        wait_until(lambda: server.engine.depth == 0)
        assert speak(server, SHORT).status_code == 200


def test_a_running_job_past_its_deadline_is_stopped(custom_voice_dir: Path) -> None:
    """A job whose consumer is slow is still bound by the request deadline: once it passes, the
    consumer gets a timeout instead of the remaining sentences and the job frees its place."""
    timeout = 1.0
    with live_server(
        model_id=str(custom_voice_dir), preload_model=True, request_timeout=timeout, max_new_tokens=16
    ) as server:
        job = plan_job(server, LONG)
        received: list[Any] = []

        async def slow_consumer() -> None:
            stream = server.engine.synthesize(job)
            started = asyncio.get_running_loop().time()
            try:
                received.append(await anext(stream))
                # The consumer stalls until well past the deadline.
                await asyncio.sleep(started + timeout * 1.5 - asyncio.get_running_loop().time())
                async for item in stream:
                    received.append(item)
            finally:
                await stream.aclose()

        with pytest.raises(JobTimeoutError):
            on_server_loop(server, slow_consumer())
        last = len(job.segments) - 1
        assert not any(chunk.segment_end and chunk.segment == last for chunk in received)
        wait_until(lambda: server.engine.depth == 0)
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
