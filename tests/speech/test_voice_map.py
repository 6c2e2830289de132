"""VOICE_MAP, read once at startup by create_app: a map that names nothing stops the start,
and JSON, YAML and Kokoro-shaped map files all reach /v1/info and requests. Run in process
(the app's own lifespan under a test client), with no server listening."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import load_settings
from server.speech.catalog import VoiceMapError


def app(**overrides: Any) -> FastAPI:
    # What a test server sets too: no warm-up pass, one torch thread.
    return create_app(load_settings(warmup=False, torch_threads=1, **overrides))


# Moved from tests/http/test_checkpoint_speakers.py, which started each through a live server
# whose create_app raised before it listened.
def test_a_map_target_that_does_not_exist_stops_startup(custom_voice_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(VoiceMapError, match=r"'Nobody'.*speakers: Vivian"):
        app(model_id=str(custom_voice_dir), voices_dir=tmp_path, voice_map='{"alloy": "Nobody"}')
    with pytest.raises(VoiceMapError, match="a speaker's own name"):
        app(model_id=str(custom_voice_dir), voices_dir=tmp_path, voice_map='{"Ryan": "Vivian"}')
    with pytest.raises(VoiceMapError, match="not valid JSON"):
        app(model_id=str(custom_voice_dir), voices_dir=tmp_path, voice_map="{alloy")


# Moved from tests/http/test_checkpoint_speakers.py, where it started three live servers.
def test_yaml_and_kokoro_shaped_map_files(custom_voice_dir: Path, tmp_path: Path) -> None:
    yaml_map = tmp_path / "map.yaml"
    yaml_map.write_text("alloy: Ryan\nmy_narrator: uncle_fu\n")
    kokoro = tmp_path / "openai_mappings.json"
    kokoro.write_text(json.dumps({"models": {"tts-1": "x"}, "voices": {"alloy": "Serena"}}))
    for path, alloy in ((yaml_map, "Ryan"), (kokoro, "Serena")):
        with TestClient(
            app(model_id=str(custom_voice_dir), voices_dir=tmp_path / "voices", voice_map=str(path))
        ) as client:
            mapping = client.get("/v1/info").json()["voice_map"]
        assert mapping["alloy"] == {"speaker": alloy}
    assert mapping.keys() >= {"nova", "shimmer"}
    # A name only the file maps is spoken (the one model load of this test).
    body = {"model": "tts-1", "voice": "my_narrator", "input": "A speaker of my own.", "response_format": "wav"}
    with TestClient(app(model_id=str(custom_voice_dir), voices_dir=tmp_path / "v", voice_map=str(yaml_map))) as client:
        spoken = client.post("/v1/audio/speech", json={**body, "seed": 4, "stream": False})
    assert spoken.status_code == 200, spoken.text
