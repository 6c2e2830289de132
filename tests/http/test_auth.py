"""API_KEYS: bearer keys on /v1/*, the WebSocket and /cache/clear; /health open."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from websockets.exceptions import InvalidStatus

from tests.support.live_server import LiveServer, live_server
from tests.support.ws import receive_until_end, send, ws_connect


@pytest.fixture(scope="module")
def keyed(custom_voice_dir: Path) -> Iterator[LiveServer]:
    with live_server(model_id=str(custom_voice_dir), api_keys="first-key, second-key") as server:
        yield server


def client(server: LiveServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=key, max_retries=0)


@pytest.mark.parametrize("key", ["first-key", "second-key"])
def test_each_configured_key_works(keyed: LiveServer, key: str) -> None:
    audio = client(keyed, key).audio.speech.create(model="tts-1", voice="alloy", input="Hi.", response_format="pcm")
    assert len(audio.content) > 0
    assert client(keyed, key).models.list().data


def test_wrong_key_is_401_authentication_error(keyed: LiveServer) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        client(keyed, "wrong-key").audio.speech.create(model="tts-1", voice="alloy", input="Hi.")
    assert caught.value.status_code == 401
    assert caught.value.body["code"] == "invalid_api_key"  # type: ignore[index]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic Zmlyc3Qta2V5"}, {"Authorization": "Bearer"}])
def test_missing_or_malformed_key_is_401_in_openai_shape(keyed: LiveServer, headers: dict[str, str]) -> None:
    with keyed.client(headers=headers) as http:
        for response in (http.get("/v1/models"), http.post("/v1/audio/speech", json={})):
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
            error = response.json()["error"]
            assert error["type"] == "invalid_request_error"
            assert error["code"] == "invalid_api_key"


def test_health_stays_open(keyed: LiveServer) -> None:
    with keyed.client() as http:
        assert http.get("/health").status_code == 200


def test_websocket_takes_the_key_as_bearer_header_or_query_parameter(keyed: LiveServer) -> None:
    utterance = {"input": "Hi.", "voice": "alloy"}
    for kwargs in ({"additional_headers": {"Authorization": "Bearer first-key"}}, {"query": "?api_key=second-key"}):
        with ws_connect(keyed, **kwargs) as socket:
            send(socket, utterance)
            answer = receive_until_end(socket)
        assert answer.last["event"] == "done" and answer.audio


@pytest.mark.parametrize("query", ["", "?api_key=wrong-key", "?api_key="])
def test_websocket_without_a_valid_key_is_refused_with_401(keyed: LiveServer, query: str) -> None:
    with pytest.raises(InvalidStatus) as caught, ws_connect(keyed, query=query):
        pass
    response = caught.value.response
    assert response.status_code == 401
    assert json.loads(response.body or b"")["error"]["code"] == "invalid_api_key"


def test_cache_clear_needs_the_key(keyed: LiveServer) -> None:
    with keyed.client() as http:
        assert http.post("/cache/clear").status_code == 401
        cleared = http.post("/cache/clear", headers={"Authorization": "Bearer first-key"})
    assert cleared.status_code == 200
    assert set(cleared.json()["cleared"]) == {"output", "prompt"}
