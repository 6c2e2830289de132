"""Batching: segments of concurrent requests share one model call, seeded requests never
do (so their audio stays repeatable), and one client leaving does not stop the others."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.audio import decode_pcm16
from tests.support.live_server import LiveServer, RecordCollector, live_server

BODY = {"model": "tts-1", "voice": "alloy", "response_format": "pcm"}


@pytest.fixture(scope="module")
def batching_server(custom_voice_dir: Path) -> Iterator[LiveServer]:
    with live_server(
        model_id=str(custom_voice_dir), preload_model=True, idle_timeout=0, max_batch_size=4, max_new_tokens=48
    ) as server:
        yield server


def post(server: LiveServer, request_id: str, body: dict[str, Any]) -> httpx.Response:
    with server.client(headers={"X-Request-ID": request_id}) as client:
        return client.post("/v1/audio/speech", json=body)


def concurrently(server: LiveServer, bodies: dict[str, dict[str, Any]]) -> dict[str, httpx.Response]:
    with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
        futures = {rid: pool.submit(post, server, rid, body) for rid, body in bodies.items()}
        return {rid: future.result() for rid, future in futures.items()}


def test_concurrent_requests_share_model_calls(batching_server: LiveServer, request_log: RecordCollector) -> None:
    bodies = {f"batch-{i}": {**BODY, "input": f"Request {i} says its own sentence. And another."} for i in range(6)}
    responses = concurrently(batching_server, bodies)
    for response in responses.values():
        assert response.status_code == 200
        audio = decode_pcm16(response.content)
        assert audio.duration > 0.2 and audio.rms > 1e-3
    sizes = [r.batch_size for rid in bodies for r in request_log.segments(rid)]
    assert len(sizes) == 12  # two sentences each, all synthesised
    assert max(sizes) > 1
    assert max(sizes) <= 4
    assert all(request_log.wait_for_request(rid)["segments_done"] == 2 for rid in bodies)


def test_seeded_requests_run_alone_and_stay_repeatable(
    batching_server: LiveServer, request_log: RecordCollector
) -> None:
    body = {**BODY, "input": "Seeded and repeatable.", "seed": 1234}
    alone = post(batching_server, "seed-alone", body).content
    bodies = {f"seed-{i}": body for i in range(4)}
    responses = concurrently(batching_server, bodies)
    for response in responses.values():
        assert response.content == alone
    assert {r.batch_size for rid in bodies for r in request_log.segments(rid)} == {1}


def test_one_client_leaving_does_not_stop_the_others(batching_server: LiveServer, request_log: RecordCollector) -> None:
    text = " ".join(f"Sentence {i} is spoken here." for i in range(4))

    def leave_early() -> None:
        with (
            batching_server.client(headers={"X-Request-ID": "leaver"}) as client,
            client.stream("POST", "/v1/audio/speech", json={**BODY, "input": text}) as response,
        ):
            next(response.iter_raw())

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        leaver = pool.submit(leave_early)
        stayers = [pool.submit(post, batching_server, f"stayer-{i}", {**BODY, "input": text}) for i in range(2)]
        leaver.result()
        results = [s.result() for s in stayers]
    assert all(r.status_code == 200 for r in results)
    for i in range(2):
        line = request_log.wait_for_request(f"stayer-{i}")
        assert line["segments_done"] == line["segments"] == 4
    assert request_log.wait_for_request("leaver")["status"] == 499
    assert batching_server.health()["queue_depth"] == 0


def test_batch_size_one_disables_batching(custom_voice_dir: Path, request_log: RecordCollector) -> None:
    with live_server(model_id=str(custom_voice_dir), preload_model=True, max_batch_size=1, max_new_tokens=24) as srv:
        bodies = {f"solo-{i}": {**BODY, "input": f"Solo request {i}."} for i in range(3)}
        assert all(r.status_code == 200 for r in concurrently(srv, bodies).values())
        assert srv.health()["max_batch_size"] == 1
    assert {r.batch_size for rid in bodies for r in request_log.segments(rid)} == {1}
