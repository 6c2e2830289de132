"""JSON's types are held to on every door: a string where a number or a boolean belongs is
refused naming the field (as OpenAI refuses it), never coerced ("yes" for true, "5" for 5).
HTTP bodies, the speech WebSocket and vLLM-Omni's session.config alike; multipart form
fields are text by nature and are read from text (the clone endpoint)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.sync.client import connect

from tests.support.live_server import LiveServer

BODY = {"input": "Hi.", "voice": "alloy", "response_format": "pcm", "max_new_tokens": 8}
# A field, and a value of the wrong JSON type that pydantic's lax mode would coerce.
COERCIBLE: list[tuple[str, Any]] = [
    ("stream", "yes"),
    ("stream", 1),
    ("top_k", "5"),
    ("top_k", 5.0),
    ("speed", "1.5"),
    ("seed", "3"),
    ("sample_rate", "24000"),
    ("timestamps", "false"),
]


@pytest.mark.parametrize(("field", "value"), COERCIBLE)
def test_http_bodies_refuse_a_value_of_the_wrong_type(server: LiveServer, field: str, value: Any) -> None:
    with server.client() as client:
        response = client.post("/v1/audio/speech", json={**BODY, field: value})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == field


@pytest.mark.parametrize(("field", "value"), [("speed", "1.5"), ("timestamps", "yes")])
def test_the_speech_websocket_refuses_a_value_of_the_wrong_type(server: LiveServer, field: str, value: Any) -> None:
    with connect(f"ws://127.0.0.1:{server.port}/v1/audio/speech/ws", proxy=None, open_timeout=30) as ws:
        ws.send(json.dumps({**BODY, field: value}))
        answer = json.loads(ws.recv(timeout=60))
    assert answer["event"] == "error" and answer["param"] == field, answer


@pytest.mark.parametrize(("field", "value"), [("stream_audio", "yes"), ("top_k", "5"), ("speed", "1.0")])
def test_vllm_omni_session_config_refuses_a_value_of_the_wrong_type(server: LiveServer, field: str, value: Any) -> None:
    config = {"type": "session.config", "voice": "alloy", "response_format": "pcm", field: value}
    with connect(f"ws://127.0.0.1:{server.port}/v1/audio/speech/stream", proxy=None, open_timeout=30) as ws:
        ws.send(json.dumps(config))
        answer = json.loads(ws.recv(timeout=60))
    assert answer["type"] == "error" and answer["param"] == field, answer


def test_the_right_types_are_served(server: LiveServer) -> None:
    with server.client() as client:
        response = client.post("/v1/audio/speech", json={**BODY, "stream": False, "top_k": 5, "speed": 1, "seed": 3})
    assert response.status_code == 200, response.text
