"""Every bad request gets a 400 (or 404 for the model) in OpenAI's error shape."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.live_server import LiveServer

GOOD = {"model": "tts-1", "voice": "alloy", "input": "Hi.", "response_format": "pcm"}


def assert_openai_error(response: Any, status: int, param: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    return dict(error)


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"input": ""}, "input"),
        ({"input": "   "}, "input"),
        ({"input": "a" * 4097}, "input"),
        ({"speed": 0}, "speed"),
        ({"speed": 5}, "speed"),
        ({"speed": "fast"}, "speed"),
        ({"response_format": "mp4"}, "response_format"),
        ({"voice": "nobody"}, "voice"),
        ({"voice": {"id": "nobody"}}, "voice"),
        ({"input": 42}, "input"),
        ({"voice": 42}, "voice"),
        ({"stream_format": "websocket"}, "stream_format"),
        ({"instructions": "x" * 4097}, "instructions"),
        ({"language": "Klingon"}, "language"),
        ({"seed": -1}, "seed"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"top_k": 1.5}, "top_k"),
        ({"repetition_penalty": 0}, "repetition_penalty"),
        ({"repetition_penalty": 3}, "repetition_penalty"),
        ({"max_new_tokens": 1}, "max_new_tokens"),
        ({"max_new_tokens": 100_000}, "max_new_tokens"),
    ],
)
def test_bad_field_is_a_400_naming_it(server: LiveServer, change: dict[str, Any], param: str) -> None:
    with server.client() as client:
        response = client.post("/v1/audio/speech", json={**GOOD, **change})
    assert_openai_error(response, 400, param)


@pytest.mark.parametrize("missing", ["input", "voice"])
def test_missing_required_field(server: LiveServer, missing: str) -> None:
    body = {k: v for k, v in GOOD.items() if k != missing}
    with server.client() as client:
        response = client.post("/v1/audio/speech", json=body)
    assert_openai_error(response, 400, missing)


def test_unknown_voice_lists_the_valid_ones(server: LiveServer) -> None:
    with server.client() as client:
        response = client.post("/v1/audio/speech", json={**GOOD, "voice": "nobody"})
    message = assert_openai_error(response, 400, "voice")["message"]
    for name in ("Vivian", "Uncle_Fu", "alloy", "cedar"):
        assert name in message


def test_malformed_json(server: LiveServer) -> None:
    with server.client() as client:
        response = client.post(
            "/v1/audio/speech", content=b'{"model": "tts-1", "input": ', headers={"content-type": "application/json"}
        )
    assert_openai_error(response, 400, None)


def test_body_that_is_not_an_object(server: LiveServer) -> None:
    with server.client() as client:
        response = client.post("/v1/audio/speech", json=["tts-1"])
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_unknown_model_is_404_model_not_found(server: LiveServer) -> None:
    with server.client() as client:
        response = client.post("/v1/audio/speech", json={**GOOD, "model": "whisper-1"})
    error = assert_openai_error(response, 404, "model")
    assert error["code"] == "model_not_found"


def test_unknown_route_is_openai_shaped(server: LiveServer) -> None:
    with server.client() as client:
        response = client.get("/v1/nothing-here")
    assert_openai_error(response, 404, None)


def test_refused_requests_are_logged_with_their_reason(server: LiveServer, request_log) -> None:  # type: ignore[no-untyped-def]
    with server.client(headers={"X-Request-ID": "refused-1"}) as client:
        client.post("/v1/audio/speech", json={**GOOD, "speed": 9})
    [record] = [r for r in request_log.records if r.getMessage() == "request refused"]
    assert record.request_id == "refused-1"
    assert record.status == 400
    assert record.param == "speed"
    assert record.endpoint == "/v1/audio/speech"
    assert not request_log.requests()  # nothing reached the engine
