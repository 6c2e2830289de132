"""A voice library damaged on disk: every entry is checked at start, bad ones are skipped
with a warning naming the file and the reason, names that clash are reported, and nothing
in the library can make /health, the voice list or the unknown-voice error fail. A voice
whose files break after start answers a clear error naming it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.live_server import LiveServer, RecordCollector, live_server
from tests.support.reference import wav


def voice_id(n: int) -> str:
    return f"voice_{n:024x}"


def write_voice(root: Path, n: int, name: str, **meta: Any) -> str:
    """A voice as the server writes one (metadata and reference; the prompt is recomputed)."""
    vid = voice_id(n)
    (root / f"{vid}.wav").write_bytes(wav(seed=n))
    fields = {
        "id": vid,
        "name": name,
        "created_at": 1_700_000_000 + n,
        "mode": "x_vector",
        "ref_text": None,
        "consent": None,
        "model_id": "elsewhere",
        "created_ns": n,
        **meta,
    }
    (root / f"{vid}.json").write_text(json.dumps(fields))
    return vid


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("damaged-voices")
    write_voice(root, 1, "Good one")
    write_voice(root, 2, "Yesterday", created_at="yesterday")
    (root / f"{write_voice(root, 3, 'No audio')}.wav").unlink()
    (root / f"{write_voice(root, 4, 'Bad audio')}.wav").write_bytes(b"RIFF garbage, not a recording")
    write_voice(root, 5, "Wrong id", id=voice_id(55))
    (root / f"{voice_id(6)}.json").write_text("{not json")
    write_voice(root, 7, "alloy")  # a preset's name
    write_voice(root, 8, "Twin")
    write_voice(root, 9, "twin")  # the same name, another case
    write_voice(root, 10, "Spoils later")
    write_voice(root, 11, "voice_0123456789abcdef")  # a name shaped like an id
    return root


@pytest.fixture(scope="module")
def started(custom_voice_dir: Path, base_dir: Path, damaged: Path) -> Iterator[tuple[LiveServer, RecordCollector]]:
    with (
        RecordCollector().attached(level=logging.WARNING) as warnings,
        live_server(model_id=str(custom_voice_dir), clone_model_id=str(base_dir), voices_dir=damaged) as server,
    ):
        yield server, warnings


def test_damaged_entries_are_skipped_with_a_warning_naming_each(started: tuple[LiveServer, RecordCollector]) -> None:
    _, warnings = started
    reasons = {r.file: r.reason for r in warnings.records if r.getMessage() == "skipping damaged saved voice"}
    assert set(reasons) == {f"{voice_id(n)}.json" for n in (2, 3, 4, 5, 6)}
    assert "created_at" in reasons[f"{voice_id(2)}.json"]
    assert "missing" in reasons[f"{voice_id(3)}.json"]
    assert "cannot be decoded" in reasons[f"{voice_id(4)}.json"]
    assert "does not match the file name" in reasons[f"{voice_id(5)}.json"]
    assert "JSON" in reasons[f"{voice_id(6)}.json"] or "json" in reasons[f"{voice_id(6)}.json"].lower()
    flagged = {r.file: r.reason for r in warnings.records if r.getMessage() == "saved voice needs attention"}
    assert "preset" in flagged[f"{voice_id(7)}.json"]
    assert voice_id(8) in flagged[f"{voice_id(9)}.json"]
    assert "looks like an id" in flagged[f"{voice_id(11)}.json"]


def test_health_listing_and_errors_still_answer(started: tuple[LiveServer, RecordCollector]) -> None:
    server, _ = started
    with server.client() as client:
        health = client.get("/health")
        listing = client.get("/v1/audio/voices")
        unknown = client.post("/v1/audio/speech", json={"model": "tts-1", "voice": "nobody", "input": "Hi."})
    assert health.status_code == 200
    assert {p["file"] for p in health.json()["clone"]["library_problems"]} >= {f"{voice_id(2)}.json"}
    assert listing.status_code == 200
    saved = {v["id"]: v["name"] for v in listing.json()["voices"] if v["type"] != "preset"}
    assert saved == {voice_id(n): name for n, name in [(1, "Good one"), (7, "alloy"), (8, "Twin"), (9, "twin")]} | {
        voice_id(10): "Spoils later",
        voice_id(11): "voice_0123456789abcdef",
    }
    assert unknown.status_code == 400
    assert "Good one" in unknown.json()["error"]["message"]


def test_clashing_names_resolve_predictably(started: tuple[LiveServer, RecordCollector]) -> None:
    server, _ = started
    body = {"model": "tts-1", "input": "Hi.", "response_format": "wav", "seed": 1}
    with server.client() as client:
        preset = client.post("/v1/audio/speech", json={**body, "voice": "alloy"})
        by_id = client.post("/v1/audio/speech", json={**body, "voice": {"id": voice_id(7)}})
        creating = client.post(
            "/v1/audio/voices", data={"name": "TWIN"}, files={"audio_sample": ("r.wav", wav(seed=3))}
        )
    assert preset.status_code == 200  # the preset, as ever
    assert by_id.status_code == 200  # the saved voice, by its id
    assert creating.status_code == 409


def test_a_voice_damaged_after_start_is_a_clear_error(
    started: tuple[LiveServer, RecordCollector], damaged: Path
) -> None:
    server, _ = started
    (damaged / f"{voice_id(10)}.wav").unlink()  # no prompt file either: nothing to rebuild from
    with server.client() as client:
        response = client.post(
            "/v1/audio/speech",
            json={"model": "tts-1", "voice": "Spoils later", "input": "Hi.", "response_format": "wav"},
        )
        good = client.post(
            "/v1/audio/speech", json={"model": "tts-1", "voice": "Good one", "input": "Hi.", "response_format": "wav"}
        )
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "voice_unavailable"
    assert "Spoils later" in error["message"] and voice_id(10) in error["message"]
    assert good.status_code == 200


def test_health_lists_each_voice_name_once(started: tuple[LiveServer, RecordCollector]) -> None:
    server, _ = started
    voices = server.health()["voices"]
    # A saved "alloy" (a preset's name) and "Twin"/"twin" (one name, two cases) each once.
    lowered = [name.lower() for name in voices]
    assert len(lowered) == len(set(lowered)), voices
    assert "alloy" in lowered and "twin" in lowered and "good one" in lowered
