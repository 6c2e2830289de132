"""The saved voice library: create, list, get, use on /v1/audio/speech, delete, persistence
across restarts, name and id safety."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from server.speech.catalog import OPENAI_VOICES, QWEN_SPEAKERS
from server.speech.library_lock import LOCK_FILE
from tests.support.audio import decode_soundfile
from tests.support.live_server import LiveServer, RecordCollector, live_server
from tests.support.reference import wav

VOICES = "/v1/audio/voices"


@pytest.fixture
def library_server(custom_voice_dir: Path, base_dir: Path, tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(
        model_id=str(custom_voice_dir), clone_model_id=str(base_dir), voices_dir=tmp_path, max_new_tokens=64
    ) as server:
        yield server


def create(client: httpx.Client, name: str, seed: int = 0, **fields: str) -> httpx.Response:
    return client.post(VOICES, data={"name": name, **fields}, files={"audio_sample": ("ref.wav", wav(seed=seed))})


def speak(client: httpx.Client, voice: Any) -> httpx.Response:
    body = {"model": "tts-1", "input": "Hello.", "voice": voice, "response_format": "wav", "seed": 1}
    return client.post("/v1/audio/speech", json=body)


def assert_speech(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert decode_soundfile(response.content).duration > 0.1


def test_create_list_get_use_delete(library_server: LiveServer, request_log: RecordCollector) -> None:
    with library_server.client() as client:
        created = create(client, "My Voice", ref_text="Hello there, this is me.", consent="recorded with consent")
        assert created.status_code == 200, created.text
        voice = created.json()
        assert voice["object"] == "audio.voice" and voice["name"] == "My Voice" and voice["mode"] == "icl"
        assert voice["id"].startswith("voice_") and isinstance(voice["created_at"], int)
        assert create(client, "Plain", seed=1).json()["mode"] == "x_vector"
        # Names are case-insensitive: a saved voice's name in another case is taken.
        assert create(client, "mY vOiCe").status_code == 409

        listed = client.get(VOICES).json()["voices"]
        presets = {v["id"] for v in listed if v["type"] == "preset"}
        assert presets == {*QWEN_SPEAKERS, *OPENAI_VOICES}
        assert [v["name"] for v in listed if v["type"] != "preset"] == ["My Voice", "Plain"]
        assert client.get(f"{VOICES}/{voice['id']}").json() == voice

        for ref in ("My Voice", "my voice", {"id": voice["id"]}, voice["id"]):
            spoken = speak(client, ref)
            assert_speech(spoken)
            # Each request's own line (a line of an earlier test may still be arriving).
            assert request_log.wait_for_request(spoken.headers["x-request-id"])["voice"] == f"saved:{voice['id']}"
        # ...and on the streaming endpoints.
        body = {"model": "tts-1", "input": "One. Two.", "voice": "My Voice"}
        with connect_sse(client, "POST", "/v1/audio/speech/stream", json=body) as source:
            events = [event.data for event in source.iter_sse() if event.event != "finish"]
        assert events[-1] == "[DONE]" and len(events) == 3
        with client.stream("POST", "/v1/audio/speech", json={**body, "response_format": "pcm"}) as streamed:
            assert streamed.status_code == 200 and len(streamed.read()) > 0
        assert library_server.health()["models"]["base"]["load_count"] == 1

        deleted = client.delete(f"{VOICES}/{voice['id']}")
        assert deleted.json() == {"id": voice["id"], "object": "audio.voice", "deleted": True}
        assert client.get(f"{VOICES}/{voice['id']}").status_code == 404
        assert client.delete(f"{VOICES}/{voice['id']}").status_code == 404
        unknown = speak(client, "My Voice")
        assert unknown.status_code == 400
        assert "Plain" in unknown.json()["error"]["message"]  # saved voices are listed as valid
    left = sorted(p.suffix for p in library_server.settings.voices_dir.iterdir() if p.name != LOCK_FILE)
    assert left == [".json", ".prompt", ".wav"]


def test_voices_survive_a_restart(custom_voice_dir: Path, base_dir: Path, tmp_path: Path) -> None:
    settings: dict[str, Any] = {
        "model_id": str(custom_voice_dir),
        "clone_model_id": str(base_dir),
        "voices_dir": tmp_path,
        "max_new_tokens": 64,
    }
    with live_server(**settings) as first, first.client() as client:
        kept = create(client, "Kept", ref_text="Words.").json()
        broken = create(client, "Broken", seed=2).json()
        before = decode_soundfile(speak(client, "Kept").content).samples
    # A prompt file that cannot be loaded is recomputed from the stored reference.
    (tmp_path / f"{broken['id']}.prompt").write_bytes(b"not a prompt")
    with live_server(**settings) as second, second.client() as client:
        names = [v["name"] for v in client.get(VOICES).json()["voices"] if v["type"] != "preset"]
        assert names == ["Kept", "Broken"]
        assert client.get(f"{VOICES}/{kept['id']}").json() == kept
        after = decode_soundfile(speak(client, {"id": kept["id"]}).content).samples
        assert_speech(speak(client, "Broken"))
        assert second.health()["clone"]["saved_voices"] == 2
    # The same stored prompt and seed give the same audio after the restart.
    assert before.shape == after.shape and abs(before - after).max() < 1e-3


# Name and id checks, one library call each, are tested on VoiceLibrary itself
# (tests/speech/test_library.py); here only how they come out over HTTP, on the shared server.
def test_library_refusals_are_openai_shaped_errors(server: LiveServer) -> None:
    voices_dir = server.settings.voices_dir
    before = sorted(voices_dir.iterdir()) if voices_dir.is_dir() else []
    with server.client() as client:
        # Refused by the form ("" is no name, 65 characters too long), then by the library.
        for name in ("", "a" * 65, "../etc/passwd", "voice_0123456789abcdef"):
            response = create(client, name)
            assert response.status_code == 400, response.text
            error = response.json()["error"]
            assert error["param"] == "name" and error["type"] == "invalid_request_error"
        assert "id" in error["message"]  # the id-shaped name says why
        taken = create(client, "alloy")
        assert taken.status_code == 409
        error = taken.json()["error"]
        assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", "name", "conflict")
        assert "preset" in error["message"]
        for voice_id in (
            "..%2F..%2Fetc%2Fpasswd",
            "voice_..",
            "voice_0123456789abcdef%2F..",
            "VOICE_0123456789ABCDEF",
            "x",
        ):
            assert client.get(f"{VOICES}/{voice_id}").status_code == 404
            deleted = client.delete(f"{VOICES}/{voice_id}")
            assert deleted.status_code == 404 and deleted.json()["error"]["type"] == "invalid_request_error"
    assert (sorted(voices_dir.iterdir()) if voices_dir.is_dir() else []) == before  # nothing was written


def test_upload_problems_are_400(server: LiveServer) -> None:
    with server.client() as client:
        garbage = client.post(VOICES, data={"name": "G"}, files={"audio_sample": ("g.wav", b"garbage" * 100)})
        short = client.post(VOICES, data={"name": "S"}, files={"audio_sample": ("s.wav", wav(seconds=0.3))})
        missing = client.post(VOICES, files={"name": (None, "M")})
    assert garbage.status_code == short.status_code == missing.status_code == 400
    assert {garbage.json()["error"]["param"], short.json()["error"]["param"]} == {"audio_sample"}
    assert missing.json()["error"]["param"] == "audio_sample"
