"""Speakers from the checkpoint and VOICE_MAP: a fine-tune-style checkpoint with speakers of
its own serves them by name with no code change (listed before its weights load), and a
Pipecat-style client that only knows OpenAI's 13 names reaches a saved voice through the map."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from server.devmodel import build_dev_checkpoint
from server.devmodel import main as devmodel_main
from server.speech.catalog import QWEN_SPEAKERS
from server.speech.speakers import check_loaded_speakers
from server.speech.voice_map import build_voice_catalog
from server.wyoming.info import describe
from tests.http.test_voice_library import create
from tests.support.audio import decode_pcm16, decode_soundfile
from tests.support.live_server import LiveServer, RecordCollector, live_server

SPEECH = "/v1/audio/speech"


@pytest.fixture(scope="module")
def fine_tuned_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ckpt") / "fine_tuned"
    assert devmodel_main([str(out), "--speakers", "Zed,Mara"]) == 0  # the CLI a user runs
    return out


@pytest.fixture
def fine_tuned(fine_tuned_dir: Path, base_dir: Path, tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(
        model_id=str(fine_tuned_dir), clone_model_id=str(base_dir), voices_dir=tmp_path, max_new_tokens=32
    ) as server:
        yield server


def speak(server: LiveServer, voice: str) -> tuple[int, dict[str, object] | bytes]:
    body = {"model": "tts-1", "voice": voice, "input": "A speaker of my own.", "response_format": "wav", "seed": 4}
    with server.client() as client:
        response = client.post(SPEECH, json={**body, "stream": False})
    return response.status_code, response.json() if response.status_code != 200 else response.content


def test_a_fine_tuned_speaker_is_listed_before_loading_and_served_by_name(fine_tuned: LiveServer) -> None:
    with fine_tuned.client() as client:
        assert fine_tuned.health()["model_loaded"] is False  # the listing came from config.json alone
        listed = [v["id"] for v in client.get("/v1/audio/voices").json()["voices"] if v["type"] == "preset"]
        info = client.get("/v1/info").json()
    # The nine are gone, and so are OpenAI's names, whose speakers this checkpoint lacks.
    # In the config's order (the dev builder writes config.json with sorted keys).
    assert listed == ["Mara", "Zed"]
    assert info["speakers"] == [{"name": "Mara", "dialect": None}, {"name": "Zed", "dialect": None}]
    assert info["speakers_source"] == "checkpoint"
    assert info["voices"] == ["Mara", "Zed"]
    for name in ("Zed", "mara", "ZED"):
        status, audio = speak(fine_tuned, name)
        assert status == 200, audio
        assert isinstance(audio, bytes) and decode_soundfile(audio).rms > 1e-4
    status, error = speak(fine_tuned, "Vivian")
    assert status == 400 and isinstance(error, dict)
    assert error["error"]["param"] == "voice"  # type: ignore[index]
    assert "Mara, Zed" in error["error"]["message"]  # type: ignore[index]
    status, _ = speak(fine_tuned, "alloy")
    assert status == 400


def test_the_default_checkpoint_has_the_nine(server: LiveServer) -> None:
    with server.client() as client:
        info = client.get("/v1/info").json()
    assert [s["name"] for s in info["speakers"]] == list(QWEN_SPEAKERS)
    assert {s["name"]: s["dialect"] for s in info["speakers"]}["Dylan"] == "beijing_dialect"
    assert info["voice_map"]["alloy"] == {"speaker": "Vivian"}


def test_pipecat_style_openai_names_reach_a_saved_voice_through_the_map(
    custom_voice_dir: Path, base_dir: Path, tmp_path: Path
) -> None:
    voice_map = json.dumps({"alloy": "saved:Anna", "echo": "Sohee"})
    with live_server(
        model_id=str(custom_voice_dir),
        clone_model_id=str(base_dir),
        voices_dir=tmp_path,
        max_new_tokens=32,
        voice_map=voice_map,
    ) as server:
        # Pipecat's OpenAITTSService: the official SDK, an OpenAI voice name, raw pcm.
        sdk = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)

        def pipecat(voice: str) -> bytes:
            return sdk.audio.speech.create(
                model="tts-1", voice=voice, input="Hello from Pipecat.", response_format="pcm", extra_body={"seed": 2}
            ).content

        with pytest.raises(openai.BadRequestError, match="saved voice 'Anna', which does not exist"):
            pipecat("alloy")  # mapped to a voice nobody saved yet: a clear 400, per request
        with server.client() as client:
            saved = create(client, "Anna")
            assert saved.status_code == 200
            listed = {v["id"]: v for v in client.get("/v1/audio/voices").json()["voices"]}
            direct = client.post(
                SPEECH,
                json={"voice": "Anna", "input": "Hello from Pipecat.", "response_format": "pcm", "seed": 2},
            ).content
        assert listed["alloy"] == {"id": "alloy", "name": "alloy", "type": "preset", "voice": "Anna"}
        assert listed["echo"]["speaker"] == "Sohee" and listed["nova"]["speaker"] == "Vivian"  # the rest stay
        through_map = pipecat("alloy")
        assert through_map == direct  # the saved voice itself, same seed
        assert decode_pcm16(through_map).rms > 1e-3
        assert decode_pcm16(pipecat("echo")).rms > 1e-3
        with server.client() as client:
            recent = client.get("/v1/requests/recent").json()["data"]
            assert [line["voice"] for line in recent[:2]] == ["echo->Sohee", f"saved:{saved.json()['id']}"]
            taken = create(client, "echo")  # a mapped name is not free for a saved voice
        assert taken.status_code == 409


# The startup errors (a bad VOICE_MAP, a preset slot without speakers) and the map files are
# tested through create_app, with no server listening: tests/speech/test_voice_map.py and
# tests/speech/test_speakers.py.


def test_devmodel_refuses_bad_speaker_lists(tmp_path: Path) -> None:
    for bad in ("Zed,zed", "1abc", ","):
        with pytest.raises(SystemExit) as exited:
            devmodel_main([str(tmp_path / "x"), "--speakers", bad])
        assert exited.value.code == 2
    with pytest.raises(ValueError, match="only the custom_voice kind"):
        build_dev_checkpoint(tmp_path / "b", "base", speakers=["Zed"])


def test_wyoming_describes_the_checkpoints_speakers_and_the_map(fine_tuned_dir: Path, tmp_path: Path) -> None:
    catalog = build_voice_catalog(str(fine_tuned_dir), '{"alloy": "Zed"}', tmp_path)
    names = [voice.name for voice in asyncio.run(describe(None, "test", catalog)).tts[0].voices]
    assert names == ["Mara", "Zed", "alloy"]


def test_a_model_whose_speakers_differ_from_the_announced_ones_is_reported() -> None:
    with RecordCollector().attached() as log:
        check_loaded_speakers(("mara", "zed"), ("Mara", "Zed"))  # the same, in the package's case
        assert not log.records
        check_loaded_speakers(("mara", "zed"), QWEN_SPEAKERS)  # a hub id assumed to have the nine
    [record] = log.records
    assert record.levelname == "WARNING" and record.loaded == ["mara", "zed"]  # type: ignore[attr-defined]
