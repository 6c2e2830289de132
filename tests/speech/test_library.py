"""The saved voice library's names and ids, on VoiceLibrary itself: which names a voice may
take (400 for an unsafe or id-shaped one, 409 for a preset's or a saved voice's, in any case),
which ids are looked up at all (404 for any outside the pattern), and that a refused name
writes nothing. tests/http/test_voice_library.py keeps the same errors' HTTP shape."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Coroutine
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from server.audio.reference import SAMPLE_RATE
from server.errors import APIError
from server.speech.library import VoiceLibrary
from server.speech.voice_files import SavedVoice


@pytest.fixture
def library(tmp_path: Path) -> VoiceLibrary:
    root = tmp_path / "voices"
    root.mkdir()
    # No clone service: every call here is refused, or answered, before a prompt would be
    # computed (a call that reached one would fail the test).
    return VoiceLibrary(root, clones=None, model_id="dev")  # type: ignore[arg-type]


def refused(call: Coroutine[Any, Any, Any]) -> APIError:
    with pytest.raises(APIError) as raised:
        asyncio.run(call)
    return raised.value


def attempt_create(library: VoiceLibrary, name: str) -> APIError:
    """Saving a voice of this name, refused; nothing may have been written."""
    error = refused(library.create(name, np.zeros(SAMPLE_RATE, dtype=np.float32), None, None))
    assert list(library.root.iterdir()) == []
    return error


def save_on_disk(root: Path, name: str) -> SavedVoice:
    """A voice as the library writes it (recording, then metadata), as a server sharing the
    directory, or this one before a restart, would have saved it."""
    voice_id = f"voice_{secrets.token_hex(12)}"
    voice = SavedVoice(voice_id, name, created_at=1, mode="x_vector", ref_text=None, consent=None, model_id="dev")
    sf.write(root / f"{voice.id}.wav", np.full(SAMPLE_RATE, 0.1, dtype=np.float32), SAMPLE_RATE, subtype="FLOAT")
    (root / f"{voice.id}.json").write_text(json.dumps(asdict(voice)))
    return voice


# Moved from tests/http/test_voice_library.py::test_preset_names_conflict.
@pytest.mark.parametrize("name", ["alloy", "VIVIAN", "uncle_fu", "Shimmer"])
def test_preset_names_conflict(library: VoiceLibrary, name: str) -> None:
    error = attempt_create(library, name)
    assert error.status == 409 and error.param == "name" and error.code == "conflict"
    assert "is the name of a preset voice" in error.message


# Moved from tests/http/test_voice_library.py::test_saved_names_conflict_case_insensitively
# (its HTTP half, a voice saved then its name in another case, is in test_create_list_get_use_delete).
def test_saved_names_conflict_case_insensitively(library: VoiceLibrary) -> None:
    asyncio.run(library.check_name("Narrator"))  # free until saved
    save_on_disk(library.root, "Narrator")
    for name in ("Narrator", "nArRaToR"):
        error = refused(library.check_name(name))
        assert error.status == 409 and error.param == "name"
        assert error.message == f"a saved voice named {name!r} already exists"


# Moved from tests/http/test_voice_library.py::test_unsafe_names_are_400 ("" and a 65-character
# name are refused by the form before the library over HTTP; the library refuses them too).
@pytest.mark.parametrize(
    "name", ["", "../etc/passwd", "/etc/passwd", "http://127.0.0.1:1/", "a" * 65, "-lead", "bad\nname", "név"]
)
def test_unsafe_names_are_400(library: VoiceLibrary, name: str) -> None:
    error = attempt_create(library, name)
    assert error.status == 400 and error.param == "name"
    assert error.message.startswith("name must be 1-64 characters")


# Moved from tests/http/test_voice_library.py::test_names_that_look_like_ids_are_400.
@pytest.mark.parametrize("name", ["voice_0123456789abcdef", "VOICE_0123456789ABCDEF", "voice_" + "a1" * 12])
def test_names_that_look_like_ids_are_400(library: VoiceLibrary, name: str) -> None:
    # A name shaped like an id could never be used by name: a voice is looked up by id first.
    error = attempt_create(library, name)
    assert error.status == 400 and error.param == "name" and "id" in error.message
    assert "looks like a voice id" in error.message


# Moved from tests/http/test_voice_library.py::test_ids_outside_the_pattern_are_404: the ids as
# sent there (percent-encoded) and as a server decodes them.
@pytest.mark.parametrize(
    "voice_id",
    [
        "..%2F..%2Fetc%2Fpasswd",
        "../../etc/passwd",
        "voice_..",
        "voice_0123456789abcdef%2F..",
        "voice_0123456789abcdef/..",
        "VOICE_0123456789ABCDEF",
        "x",
    ],
)
def test_ids_outside_the_pattern_are_404(library: VoiceLibrary, voice_id: str) -> None:
    kept = save_on_disk(library.root, "Kept")
    for call in (library.get(voice_id), library.delete(voice_id)):
        error = refused(call)
        assert error.status == 404 and error.param == "voice_id"
    assert asyncio.run(library.get(kept.id)) == kept  # a real id is found, and nothing was deleted
