"""/health and /v1/models."""

from __future__ import annotations

from pathlib import Path

from tests.support.live_server import LiveServer


def test_health_reports_each_model_slot(server: LiveServer) -> None:
    with server.client() as client:
        response = client.get("/health")
    assert response.status_code == 200
    health = response.json()
    assert health["status"] in ("ok", "degraded")
    assert health["queue_depth"] >= 0
    assert health["max_queue_depth"] == server.settings.max_queue_depth
    for name, model_id in (("custom_voice", server.settings.model_id), ("base", server.settings.clone_model_id)):
        slot = health["models"][name]
        assert slot["model_id"] == model_id
        assert slot["device"] == "cpu"
        assert isinstance(slot["loaded"], bool)
        assert "last_error" in slot
    assert health["gpu"] is None  # no GPU on the test machines


def test_models_list_in_openai_shape(server: LiveServer) -> None:
    with server.client() as client:
        response = client.get("/v1/models")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    ids = [m["id"] for m in body["data"]]
    for name in ("tts-1", "tts-1-hd", "gpt-4o-mini-tts", "qwen3-tts", Path(server.settings.model_id).name):
        assert name in ids
    # A local model directory is served under its last path part; its path is not shown.
    assert server.settings.model_id not in ids
    for model in body["data"]:
        assert model["object"] == "model"
        assert isinstance(model["created"], int)
        assert model["owned_by"]
