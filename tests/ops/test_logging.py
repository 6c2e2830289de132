"""Logs: with LOG_FORMAT=json every line of the server and of uvicorn is one JSON object
carrying the record's fields; the settings are logged once at start with keys masked; the
X-Request-ID header round-trips and names the request's log line."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

from server.config import load_settings
from server.logs import JsonFormatter, TextFormatter
from tests.support.engine_control import wait_until
from tests.support.live_server import LiveServer, attached_handler
from tests.support.ops import API_KEY, REQUEST_ID, SigtermRun

BODY = {"model": "tts-1", "voice": "Ryan", "input": "Hello there.", "response_format": "pcm"}
OWN_LOGGERS = ("qwen3-tts", "uvicorn")


def test_server_and_uvicorn_lines_are_json(sigterm_run: SigtermRun) -> None:
    records = sigterm_run.records()
    for record in records:
        assert {"timestamp", "level", "logger", "message"} <= record.keys()
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["timestamp"])
    uvicorn_messages = [r["message"] for r in records if r["logger"].startswith("uvicorn")]
    assert any(m.startswith("Started server process") for m in uvicorn_messages)
    assert any(m.startswith("Uvicorn running on") for m in uvicorn_messages)
    assert "Shutting down" in uvicorn_messages
    assert not any("color_message" in r for r in records)
    # Whatever is not JSON was printed by third-party code, never by our or uvicorn's loggers.
    plain = [line for line in sigterm_run.log_lines if not line.startswith("{")]
    assert not [line for line in plain if any(name in line for name in OWN_LOGGERS) or "Uvicorn" in line]


def test_settings_logged_once_with_keys_masked(sigterm_run: SigtermRun) -> None:
    [ready] = sigterm_run.messages("server ready")
    settings = ready["settings"]
    assert settings["api_keys"] == [f"***({len(API_KEY)} chars)"]
    assert settings["log_format"] == "json"
    assert settings["max_new_tokens"] == 24
    assert not any(API_KEY in line for line in sigterm_run.log_lines)


def test_request_line_carries_id_and_latency_breakdown(sigterm_run: SigtermRun) -> None:
    [line] = [r for r in sigterm_run.messages("speech request") if r.get("request_id") == REQUEST_ID]
    assert line["logger"] == "qwen3-tts"
    assert line["level"] == "INFO"
    for name in ("queue_ms", "load_ms", "inference_ms", "encode_ms", "total_ms", "audio_seconds", "chars"):
        assert isinstance(line[name], int | float), name
    assert line["total_ms"] >= line["inference_ms"] > 0


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The server's request logger, formatted by JsonFormatter into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    with attached_handler(handler, "qwen3-tts", logging.INFO):
        yield buffer


def test_given_request_id_is_returned_and_logged(ops_server: LiveServer, json_log: io.StringIO) -> None:
    with ops_server.client() as client:
        response = client.post("/v1/audio/speech", json=BODY, headers={"X-Request-ID": "client-id-42"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "client-id-42"

    def logged() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
        return [r for r in lines if r["message"] == "speech request" and r["request_id"] == "client-id-42"]

    # The line is written once the last byte has been handed over, a moment after the client has it.
    wait_until(lambda: len(logged()) == 1)
    [line] = logged()
    assert line["status"] == 200
    assert line["endpoint"] == "/v1/audio/speech"


def test_request_id_generated_when_absent_or_unsafe(ops_server: LiveServer) -> None:
    with ops_server.client() as client:
        plain = client.get("/health")
        unsafe = client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    for response in (plain, unsafe):
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert plain.headers["x-request-id"] != unsafe.headers["x-request-id"]


def test_text_format_keeps_masked_settings_on_one_line() -> None:
    settings = load_settings(api_keys="sk-first-secret,sk-2", log_format="text")
    record = logging.LogRecord("qwen3-tts", logging.INFO, __file__, 0, "server ready", (), None)
    record.settings = settings.public_view()
    line = TextFormatter().format(record)
    assert "\n" not in line
    assert "server ready" in line
    assert "***(15 chars)" in line and "***(4 chars)" in line
    assert "sk-first-secret" not in line and "sk-2'" not in line
