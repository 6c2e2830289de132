"""What an anonymous client may read when API_KEYS is set, the docs switch, and a published
OpenAPI document that says what the server does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.live_server import LiveServer, live_server

KEY = "sk-exposure-test"
BEARER = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def keyed(custom_voice_dir: Path) -> Iterator[LiveServer]:
    # A model that cannot load puts raw exception text (with local paths) in /health.
    with live_server(model_id=str(custom_voice_dir), clone_model_id="/nonexistent/base-model", api_keys=KEY) as srv:
        yield srv


def test_anonymous_health_is_the_status_and_model_loaded_alone(keyed: LiveServer) -> None:
    with keyed.client() as client:
        client.post(
            "/v1/audio/voices", headers=BEARER, data={"name": "x"}, files={"audio_sample": ("a.wav", b"x" * 10)}
        )
        anonymous = client.get("/health")
        detailed = client.get("/health", headers=BEARER)
    assert anonymous.status_code == 200
    # The status, and whether the model is loaded (clients of the earlier server poll it).
    assert anonymous.json() == {"status": detailed.json()["status"], "model_loaded": detailed.json()["model_loaded"]}
    assert "nonexistent" not in anonymous.text
    assert detailed.json()["models"]["base"]["model_id"] == "/nonexistent/base-model"


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_docs_need_the_key(keyed: LiveServer, path: str) -> None:
    with keyed.client() as client:
        assert client.get(path).status_code == 401
        assert client.get(path, headers=BEARER).status_code == 200


def test_docs_can_be_turned_off(custom_voice_dir: Path) -> None:
    with live_server(model_id=str(custom_voice_dir), docs_enabled=False) as srv, srv.client() as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert client.get(path).status_code == 404


def test_unknown_model_does_not_show_local_paths(keyed: LiveServer) -> None:
    with keyed.client(headers=BEARER) as client:
        response = client.post("/v1/audio/speech", json={"model": "whisper-1", "voice": "alloy", "input": "Hi."})
        by_path = client.post(
            "/v1/audio/speech",
            json={"model": keyed.settings.model_id, "voice": "alloy", "input": "Hi.", "response_format": "pcm"},
        )
    assert response.status_code == 404
    assert keyed.settings.model_id not in response.text
    assert "/nonexistent" not in response.text
    assert Path(keyed.settings.model_id).name in response.json()["error"]["message"]
    assert by_path.status_code == 200  # the path is still accepted, only not shown


def test_openapi_describes_the_server(hardened: LiveServer) -> None:
    with hardened.client() as client:
        document = client.get("/openapi.json").json()
        not_allowed = client.put("/v1/audio/speech")
    operations = [(p, m, op) for p, ops in document["paths"].items() for m, op in ops.items()]
    assert not [(p, m) for p, m, op in operations if "422" in op["responses"]]
    speech = document["paths"]["/v1/audio/speech"]["post"]
    assert {"audio/mpeg", "audio/wav", "audio/pcm", "text/event-stream"} <= set(speech["responses"]["200"]["content"])
    assert speech["responses"]["400"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    request = document["components"]["schemas"]["SpeechRequest"]["properties"]
    assert request["input"]["minLength"] == 1
    assert request["speed"]["minimum"] == 0.25 and request["speed"]["maximum"] == 4.0
    clone = document["paths"]["/v1/audio/speech/clone"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert clone["schema"]["required"] == ["file", "input"]
    assert clone["schema"]["properties"]["file"]["format"] == "binary"
    assert "multipart/form-data" in document["paths"]["/v1/audio/voices"]["post"]["requestBody"]["content"]
    assert not_allowed.status_code == 405
    assert not_allowed.headers["allow"] == "POST"
