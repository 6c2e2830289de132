"""A client's string in an error is quoted cut to 64 characters and escaped, on every door:
an error never echoes a 100,000-character value (or key) back, nor the control characters in
it. (The Wyoming port's cases are in tests/wyoming/test_hostile_clients.py.)"""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.sync.client import connect

from tests.support.live_server import LiveServer

# Long, and with an escape sequence that would rewrite a terminal showing the error.
HUGE = "\x1b[2J" + "x" * 100_000
LIMIT = 400  # far above 64 characters and the message around them; far below HUGE

WEBSOCKET = {
    "unknown type": {"type": HUGE},
    "response_format": {"input": "Hi.", "voice": "alloy", "response_format": HUGE},
}
OMNI = {
    "unknown type": {"type": HUGE},
    "type of another kind": {"type": ["session.config"]},
    "unknown field": {"type": "session.config", HUGE: 1},
    "response_format": {"type": "session.config", "voice": "alloy", "response_format": "z" * 30 + "\x1b"},
}


def first_answer(server: LiveServer, path: str, message: dict[str, Any]) -> dict[str, Any]:
    with connect(f"ws://127.0.0.1:{server.port}{path}", proxy=None, open_timeout=30, max_size=None) as ws:
        ws.send(json.dumps(message))
        answer = ws.recv(timeout=60)
    assert isinstance(answer, str)
    decoded: dict[str, Any] = json.loads(answer)
    return decoded


def assert_quoted(text: str) -> None:
    assert len(text) < LIMIT, len(text)
    assert "\x1b" not in text, text


@pytest.mark.parametrize("case", sorted(WEBSOCKET))
def test_websocket_errors_quote_client_strings(server: LiveServer, case: str) -> None:
    answer = first_answer(server, "/v1/audio/speech/ws", WEBSOCKET[case])
    assert answer["event"] == "error", answer
    assert_quoted(answer["detail"])


@pytest.mark.parametrize("case", sorted(OMNI))
def test_vllm_omni_errors_quote_client_strings(server: LiveServer, case: str) -> None:
    answer = first_answer(server, "/v1/audio/speech/stream", OMNI[case])
    assert answer["type"] == "error", answer
    assert_quoted(answer["message"])
    assert answer["param"] is None or len(answer["param"]) < LIMIT


@pytest.mark.parametrize("field", ["model", "voice", "response_format", "language", "stream_format"])
def test_http_errors_quote_client_strings(server: LiveServer, field: str) -> None:
    with server.client() as client:
        response = client.post("/v1/audio/speech", json={"input": "Hi.", "voice": "alloy", field: HUGE})
    assert response.status_code == 400, response.text
    assert_quoted(response.json()["error"]["message"])


def test_http_path_strings_are_quoted(server: LiveServer) -> None:
    with server.client() as client:
        response = client.get("/v1/audio/voices/" + "x" * 5000)
    assert response.status_code == 404
    assert_quoted(response.json()["error"]["message"])
