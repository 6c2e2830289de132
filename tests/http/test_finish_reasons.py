"""Finish reasons end to end: dev checkpoints steered to never stop, fall silent or loop end
with `length`, `silence` and `repetition`, the ordinary one with `stop`; each reason reaches
the response header, the SSE and sentence streams, the WebSocket, the request log line,
/v1/requests/recent and the metrics; only a clean (`stop`) response is cached."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from httpx_sse import connect_sse

from server.engine.jobs import FinishReason
from server.speech.request_log import finish_reason_for
from tests.support.audio import decode_soundfile
from tests.support.checkpoints import DevCheckpoint
from tests.support.live_server import LiveServer, RecordCollector, dev_settings, live_server
from tests.support.ws import receive_until_end, send, ws_connect

TEXT = "Hello there. This is a test of the guards."
BODY = {"model": "tts-1", "voice": "alloy", "input": TEXT, "response_format": "wav"}
WHOLE = {**BODY, "stream": False}
STEERED = [("endless", "length"), ("silent", "silence"), ("loop", "repetition")]


@pytest.fixture(scope="module", params=STEERED, ids=[reason for _, reason in STEERED])
def steered(
    request: pytest.FixtureRequest,
    base_dir: Path,
    dev_checkpoint: DevCheckpoint,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LiveServer, str]]:
    behaviour, reason = request.param
    directory = dev_checkpoint(behaviour=behaviour)
    settings = dev_settings(directory, base_dir, tmp_path_factory.mktemp("voices"))
    # A checkpoint that never stops runs every segment to the cap: a small one proves `length`
    # as well as a large one. The guards need room to see 12 quiet or 16 looping frames.
    cap = 40 if reason == "length" else 150
    settings.update(max_new_tokens=cap, guard_silence_frames=12, guard_loop_frames=16)
    with live_server(**settings) as running:
        yield running, reason


def finish_count(server: LiveServer, reason: str) -> float:
    with server.client() as client:
        text = client.get("/metrics").text
    for line in text.splitlines():
        if line.startswith(f'qwen3_tts_finish_total{{reason="{reason}"}}'):
            return float(line.split()[-1])
    raise AssertionError(f"no finish series for {reason}")


def sse_events(server: LiveServer, path: str, body: dict[str, Any]) -> list[Any]:
    with server.client() as client, connect_sse(client, "POST", path, json=body) as source:
        assert source.response.status_code == 200
        return list(source.iter_sse())


def test_each_reason_reaches_every_place(steered: tuple[LiveServer, str], request_log: RecordCollector) -> None:
    server, reason = steered
    before = finish_count(server, reason)
    with server.client() as client:
        whole = client.post("/v1/audio/speech", json=WHOLE)
        assert whole.status_code == 200
        assert whole.headers["x-finish-reason"] == reason
        duration = decode_soundfile(whole.content).duration
        line = request_log.wait_for_request(whole.headers["x-request-id"])
        assert line["finish_reason"] == reason
        # A guarded tail is cut from the whole file: it holds exactly the frames kept.
        assert duration == pytest.approx(line["output_frames"] * 1920 / 24_000, abs=1e-3) and duration > 0
        recent = client.get("/v1/requests/recent").json()["data"]
        assert next(r for r in recent if r["request_id"] == line["request_id"])["finish_reason"] == reason
    assert finish_count(server, reason) == before + 1

    events = sse_events(server, "/v1/audio/speech", {**BODY, "stream_format": "sse"})
    done = json.loads(events[-1].data)
    assert done["type"] == "speech.audio.done" and done["finish_reason"] == reason
    assert set(done["usage"]) == {"input_tokens", "output_tokens", "total_tokens"}  # OpenAI's, unchanged

    events = sse_events(server, "/v1/audio/speech/stream", BODY)
    assert events[-2].data == "[DONE]"
    assert events[-1].event == "finish"
    assert json.loads(events[-1].data) == {"finish_reason": reason, "sentences": [reason, reason]}

    with ws_connect(server) as socket:
        send(socket, {"input": TEXT, "voice": "alloy"})
        done = receive_until_end(socket).last
        assert done["event"] == "done" and done["finish_reason"] == reason
        send(socket, {"type": "start", "voice": "alloy"})
        send(socket, {"type": "delta", "text": TEXT})
        send(socket, {"type": "flush"})
        done = receive_until_end(socket).last
        assert done["event"] == "done" and done["finish_reason"] == reason
        assert done["sentences"] == [reason, reason]


def test_a_capped_response_is_not_cached(steered: tuple[LiveServer, str], request_log: RecordCollector) -> None:
    server, reason = steered
    body = {**WHOLE, "input": "Never cached."}
    with server.client() as client:
        for _ in range(2):
            response = client.post("/v1/audio/speech", json=body)
            assert response.headers["x-finish-reason"] == reason
            assert request_log.wait_for_request(response.headers["x-request-id"])["cache"] == "miss"


def test_a_clean_response_stops_and_is_cached(server: LiveServer, request_log: RecordCollector) -> None:
    body = {**WHOLE, "input": "Cached when it stops cleanly."}
    with server.client() as client:
        states = []
        for _ in range(2):
            response = client.post("/v1/audio/speech", json=body)
            assert response.headers["x-finish-reason"] == "stop"
            line = request_log.wait_for_request(response.headers["x-request-id"])
            assert line["finish_reason"] == "stop"
            states.append(line["cache"])
    assert states == ["miss", "hit"]
    events = sse_events(server, "/v1/audio/speech/stream", BODY)
    assert events[-2].data == "[DONE]" and json.loads(events[-1].data)["finish_reason"] == "stop"


def test_a_request_that_did_not_complete_is_named_by_how_it_ended() -> None:
    stop, length = FinishReason.STOP, FinishReason.LENGTH
    assert finish_reason_for(200, [stop, stop]) is stop
    assert finish_reason_for(200, [stop, length, stop]) is length  # one capped segment marks it
    assert finish_reason_for(200, []) is stop  # a cache hit: only clean responses are kept
    assert finish_reason_for(499, [stop]) is FinishReason.CANCELLED
    assert finish_reason_for(504, [stop]) is FinishReason.TIMEOUT
    assert finish_reason_for(503, []) is FinishReason.ERROR
    assert finish_reason_for(500, [stop]) is FinishReason.ERROR
