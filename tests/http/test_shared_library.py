"""One VOICES_DIR served by two server processes' worth of apps (two live servers here, as
two replicas of a cluster would): a voice saved through one speaks through the other, a
deletion is seen by both, and two saves of one name at once give one voice and one 409."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.http.test_voice_library import VOICES, assert_speech, create, speak
from tests.support.live_server import LiveServer, live_server
from tests.support.reference import wav


@pytest.fixture
def pair(custom_voice_dir: Path, base_dir: Path, tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    settings = {"model_id": str(custom_voice_dir), "clone_model_id": str(base_dir), "voices_dir": tmp_path}
    with live_server(**settings, max_new_tokens=64) as first, live_server(**settings, max_new_tokens=64) as second:
        yield first, second


def cloned_names(client: httpx.Client) -> list[str]:
    return [v["name"] for v in client.get(VOICES).json()["voices"] if v["type"] == "cloned"]


def test_a_voice_saved_on_one_server_speaks_on_the_other(pair: tuple[LiveServer, LiveServer]) -> None:
    first, second = pair
    with first.client() as a, second.client() as b:
        # Looked up on B before it exists: a miss B must not remember.
        assert speak(b, "Shared").status_code == 400
        saved = create(a, "Shared", ref_text="Words.")
        assert saved.status_code == 200, saved.text
        voice = saved.json()

        assert_speech(speak(b, "shared"))  # by name, on a server that never saw the save
        assert b.get(f"{VOICES}/{voice['id']}").json() == voice
        assert cloned_names(b) == ["Shared"]
        assert create(b, "SHARED").status_code == 409

        # Deleted through B: A no longer finds it, by id or by name, and the name is free again.
        assert b.delete(f"{VOICES}/{voice['id']}").status_code == 200
        assert a.get(f"{VOICES}/{voice['id']}").status_code == 404
        assert a.delete(f"{VOICES}/{voice['id']}").status_code == 404
        assert speak(a, "Shared").status_code == 400
        again = create(a, "Shared", seed=3)
        assert again.status_code == 200 and again.json()["id"] != voice["id"]
        assert_speech(speak(b, "Shared"))
        assert first.health()["clone"]["saved_voices"] == second.health()["clone"]["saved_voices"] == 1


def test_two_saves_of_one_name_at_once_give_one_voice(pair: tuple[LiveServer, LiveServer]) -> None:
    first, second = pair
    # Two engines in one test process must not load a model at the same moment (the model
    # package's loading is not thread-safe); real replicas are separate processes.
    for server in pair:
        with server.client() as client:
            clone = client.post(
                "/v1/audio/speech/clone", data={"input": "Hi.", "response_format": "wav"}, files={"file": wav()}
            )
            assert clone.status_code == 200, clone.text
    start = threading.Barrier(2)
    answers: dict[int, httpx.Response] = {}

    def save(index: int, server: LiveServer) -> None:
        with server.client() as client:
            start.wait(timeout=30)
            answers[index] = create(client, "Narrator", seed=index)

    threads = [threading.Thread(target=save, args=(i, s)) for i, s in enumerate(pair)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(r.status_code for r in answers.values()) == [200, 409], [r.text for r in answers.values()]
    assert [r.json()["error"]["param"] for r in answers.values() if r.status_code == 409] == ["name"]
    voices_dir = first.settings.voices_dir
    assert len(list(voices_dir.glob("voice_*.json"))) == 1
    # The loser left no reference or prompt behind.
    assert len(list(voices_dir.glob("voice_*.wav"))) == len(list(voices_dir.glob("voice_*.prompt"))) == 1
    with first.client() as a, second.client() as b:
        assert cloned_names(a) == cloned_names(b) == ["Narrator"]
