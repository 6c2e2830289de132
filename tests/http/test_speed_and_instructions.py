"""speed (time stretch through the API) and instructions (followed or reported ignored)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.audio import decode_pcm16
from tests.support.checkpoints import relabelled_as_small
from tests.support.live_server import LiveServer, live_server

# One sentence: a speed change stretches each sentence on its own, so a longer text would be
# segmented differently at speed 1.
BODY = {"model": "tts-1", "voice": "echo", "input": "A single speed test sentence here.", "seed": 9}


def duration(server: LiveServer, **extra: object) -> float:
    with server.client() as client:
        response = client.post("/v1/audio/speech", json={**BODY, "response_format": "pcm", **extra})
    assert response.status_code == 200, response.text
    return decode_pcm16(response.content).duration


def test_speed_two_halves_and_half_doubles_the_duration(server: LiveServer) -> None:
    normal = duration(server)
    assert duration(server, speed=2.0) == pytest.approx(normal / 2, rel=0.08)
    assert duration(server, speed=0.5) == pytest.approx(normal * 2, rel=0.08)
    assert duration(server, speed=1.0) == normal


def test_instructions_are_followed_by_a_model_that_honours_them(server: LiveServer) -> None:
    with server.client() as client:
        for field in ("instructions", "instruct"):
            response = client.post(
                "/v1/audio/speech", json={**BODY, field: "Speak slowly and warmly.", "response_format": "pcm"}
            )
            assert response.status_code == 200
            assert "x-instructions-ignored" not in response.headers


@pytest.fixture(scope="module")
def small_model_server(custom_voice_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The dev checkpoint relabelled as a 0.6B model, which the package runs without instructions."""
    copy = relabelled_as_small(custom_voice_dir, tmp_path_factory.mktemp("ckpt06") / "custom_voice_0b6")
    with live_server(model_id=str(copy)) as server:
        yield server


def test_ignored_instructions_are_reported_in_header_and_log(small_model_server: LiveServer, request_log) -> None:  # type: ignore[no-untyped-def]
    with small_model_server.client() as client:
        for stream in (True, False):
            response = client.post(
                "/v1/audio/speech",
                json={**BODY, "instructions": "Whisper.", "response_format": "pcm", "stream": stream},
                headers={"X-Request-ID": f"ignored-{stream}"},
            )
            assert response.status_code == 200
            assert "does not follow instructions" in response.headers["x-instructions-ignored"]
        plain = client.post(
            "/v1/audio/speech", json={**BODY, "response_format": "pcm"}, headers={"X-Request-ID": "plain"}
        )
        assert "x-instructions-ignored" not in plain.headers
    # Each line is written once its response's last byte has been handed over: wait for them.
    flags = [
        request_log.wait_for_request(rid).get("instructions_ignored")
        for rid in ("ignored-True", "ignored-False", "plain")
    ]
    assert flags == [True, True, None]
