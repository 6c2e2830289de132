"""Files in VOICES_DIR that are not regular files (a FIFO, as a shared volume can hold one):
skipped with a warning, at start and while running, and nothing waits on them. Reading the
library happens off the event loop, so a slow file never stops /health."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.test_damaged_library import voice_id, write_voice
from tests.support.live_server import LiveServer, RecordCollector, live_server

SPEECH = {"model": "tts-1", "input": "Hi.", "response_format": "wav"}


@pytest.fixture(scope="module")
def with_fifos(
    custom_voice_dir: Path, base_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, RecordCollector, Path]]:
    root = tmp_path_factory.mktemp("fifo-voices")
    write_voice(root, 1, "Good one")
    os.mkfifo(root / f"{voice_id(2)}.json")  # opening it to read would wait for a writer
    # A voice whose prompt file is a FIFO: made for this clone model, so the prompt is tried.
    write_voice(root, 3, "Piped prompt", model_id=str(base_dir))
    os.mkfifo(root / f"{voice_id(3)}.prompt")
    with (
        RecordCollector().attached(level=logging.WARNING) as warnings,
        live_server(model_id=str(custom_voice_dir), clone_model_id=str(base_dir), voices_dir=root) as server,
    ):
        yield server, warnings, root


def skipped(warnings: RecordCollector) -> dict[str, str]:
    return {r.file: r.reason for r in warnings.records if r.getMessage() == "skipping damaged saved voice"}


def test_a_fifo_at_start_is_skipped_with_a_warning(with_fifos: tuple[LiveServer, RecordCollector, Path]) -> None:
    server, warnings, _ = with_fifos
    assert "not a regular file" in skipped(warnings)[f"{voice_id(2)}.json"]
    with server.client(timeout=30) as client:
        assert client.get("/health").status_code == 200
        assert client.post("/v1/audio/speech", json={**SPEECH, "voice": "Good one"}).status_code == 200


def test_a_fifo_made_while_running_blocks_nothing(with_fifos: tuple[LiveServer, RecordCollector, Path]) -> None:
    server, warnings, root = with_fifos
    os.mkfifo(root / f"{voice_id(4)}.json")
    with server.client(timeout=30) as client:
        health = client.get("/health")
        listing = client.get("/v1/audio/voices")
        unknown = client.post("/v1/audio/speech", json={**SPEECH, "voice": "nobody"})
    assert health.status_code == 200 and listing.status_code == 200 and unknown.status_code == 400
    assert "not a regular file" in skipped(warnings)[f"{voice_id(4)}.json"]
    assert [p["file"] for p in health.json()["clone"]["library_problems"]].count(f"{voice_id(4)}.json") == 1


def test_a_fifo_as_a_prompt_file_is_not_read(with_fifos: tuple[LiveServer, RecordCollector, Path]) -> None:
    server, _, _ = with_fifos
    with server.client(timeout=60) as client:
        response = client.post("/v1/audio/speech", json={**SPEECH, "voice": "Piped prompt"})
    # Recomputed from the reference recording instead of waiting on the FIFO.
    assert response.status_code == 200, response.text
