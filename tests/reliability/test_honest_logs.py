"""One log line per request with the status it really ended with; no traceback and no
invented 500 for a stream cut short on purpose; client strings capped and escaped in error
bodies and log lines."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from server.logs import JsonFormatter, TextFormatter
from tests.support.engine_control import inference_held, wait_until
from tests.support.live_server import LiveServer, RecordCollector, live_server

LONG = " ".join(f"Sentence {i} goes on for a while." for i in range(30))
SPEECH = {"model": "tts-1", "voice": "alloy", "input": "Hi.", "response_format": "pcm"}


def test_timeout_mid_audio_stream_is_one_504_line_and_a_cut_stream(custom_voice_dir: Path) -> None:
    with (
        RecordCollector().attached(logger_name="", level=logging.INFO) as everything,
        live_server(model_id=str(custom_voice_dir), preload_model=True, request_timeout=3, max_new_tokens=16) as srv,
        srv.client(headers={"X-Request-ID": "cut-1"}) as client,
    ):
        received = b""
        with (
            pytest.raises(httpx.RemoteProtocolError),  # the body ends without its last chunk
            client.stream("POST", "/v1/audio/speech", json={**SPEECH, "input": LONG}) as response,
        ):
            assert response.status_code == 200
            chunks = response.iter_raw()
            received += next(chunks)
            # The stream is open; from here nothing more is synthesised until its deadline passed.
            with inference_held(srv):
                for chunk in chunks:
                    received += chunk
        line = everything.wait_for_request("cut-1")
        wait_until(lambda: srv.health()["queue_depth"] == 0)
    assert received  # the audio before the timeout arrived
    assert line["status"] == 504
    assert "within 3 s" in line["error"]
    messages = [record.getMessage() for record in everything.records]
    assert not [m for m in messages if m.startswith("Exception in ASGI application")]
    refused = [r for r in everything.records if r.getMessage() == "request refused"]
    assert not refused, [vars(r) for r in refused]
    assert len([r for r in everything.requests() if r.get("request_id") == "cut-1"]) == 1


def test_client_gone_mid_stream_is_499_not_200(hardened: LiveServer, request_log: RecordCollector) -> None:
    with (
        hardened.client(headers={"X-Request-ID": "gone-mid"}) as client,
        client.stream("POST", "/v1/audio/speech", json={**SPEECH, "input": LONG}) as response,
    ):
        next(response.iter_raw())
    line = request_log.wait_for_request("gone-mid")
    assert line["status"] == 499
    assert line["segments_done"] < line["segments"]


def test_long_voice_string_is_not_echoed(hardened: LiveServer) -> None:
    with hardened.client() as client:
        megabyte = client.post("/v1/audio/speech", json={**SPEECH, "voice": "v" * 1_000_000})
        huge = client.post("/v1/audio/speech", json={**SPEECH, "voice": "v" * 200_000})
        long = client.post("/v1/audio/speech", json={**SPEECH, "voice": "w" * 120})
    assert megabyte.status_code == 413  # past MAX_JSON_BYTES: never parsed
    assert len(megabyte.content) < 1000
    assert huge.status_code == 400
    assert huge.json()["error"]["param"] == "voice"
    assert len(huge.content) < 1000
    assert long.status_code == 400
    message = long.json()["error"]["message"]
    assert "w" * 64 in message and "w" * 65 not in message
    assert "(120 characters)" in message


def test_control_characters_from_clients_are_escaped_in_logs(
    hardened: LiveServer, request_log: RecordCollector
) -> None:
    with hardened.client(headers={"X-Request-ID": "ctl-1"}) as client:
        voice = client.post("/v1/audio/speech", json={**SPEECH, "voice": "evil\n2026 INFO forged line \x1b[31m"})
        path = client.get("/v1/%1b%5b31mred%0aforged")
    assert voice.status_code == 400
    assert "\\n" in voice.json()["error"]["message"]  # quoted with escapes, not raw
    assert path.status_code == 404
    records = [r for r in request_log.records if getattr(r, "request_id", None) == "ctl-1"]
    assert len(records) == 2
    for formatter in (TextFormatter(), JsonFormatter()):
        for record in records:
            line = formatter.format(record)
            assert "\n" not in line and "\x1b" not in line, line


def test_speed_nan_and_voice_object_errors_read_well(hardened: LiveServer) -> None:
    with hardened.client() as client:
        nan = client.post(
            "/v1/audio/speech",
            content=b'{"model": "tts-1", "voice": "alloy", "input": "Hi.", "speed": NaN}',
            headers={"Content-Type": "application/json"},
        )
        voice = client.post("/v1/audio/speech", json={**SPEECH, "voice": {"name": "alloy"}})
    assert nan.status_code == 400
    assert nan.json()["error"]["param"] == "speed"
    assert "finite" in nan.json()["error"]["message"]
    message = voice.json()["error"]["message"]
    assert voice.status_code == 400 and voice.json()["error"]["param"] == "voice"
    assert ".str" not in message and '{"id"' in message
