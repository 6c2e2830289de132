"""VOICE_MAP's own input, read at startup: a file that is not a regular file is refused at once
(a FIFO would hold the start until someone writes to it), mapped names follow the rules of
saved voices' names, and an inline value that starts like JSON is read as JSON and said so."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from server.speech.catalog import VoiceMapError
from server.speech.voice_map import build_voice_catalog, load_voice_map

# Generous: reading a regular file, or refusing another kind, is immediate.
DEADLINE_SECONDS = 60.0


def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "map.json"
    os.mkfifo(fifo)
    outcome: list[BaseException | dict[str, str]] = []

    def load() -> None:
        try:
            outcome.append(load_voice_map(str(fifo)))
        except BaseException as exc:
            outcome.append(exc)

    reader = threading.Thread(target=load, daemon=True)
    reader.start()
    reader.join(DEADLINE_SECONDS)
    if reader.is_alive():
        # Still waiting for a writer: release it (the test has failed already).
        with open(fifo, "w") as writer:
            writer.write("{}")
        reader.join(DEADLINE_SECONDS)
        pytest.fail("reading VOICE_MAP waited on a FIFO")
    [result] = outcome
    assert isinstance(result, VoiceMapError), result
    assert "not a regular file" in str(result) and "map.json" in str(result)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("bad\nname", "letters, digits"),
        ("tab\tname", "letters, digits"),
        ("\x1b[2Jclear", "letters, digits"),
        ("-starts-with-a-dash", "letters, digits"),
        ("n" * 65, "letters, digits"),
        ("design", "described voice"),
        ("DESIGN", "described voice"),
        ("voice_0123456789abcdef", "voice id"),
    ],
)
def test_mapped_names_follow_the_rules_of_saved_voice_names(custom_voice_dir: Path, name: str, why: str) -> None:
    value = json.dumps({name: "Ryan"})
    with pytest.raises(VoiceMapError, match=why) as refused:
        build_voice_catalog(str(custom_voice_dir), value, custom_voice_dir / "no-voices")
    message = str(refused.value)
    assert "\n" not in message and "\t" not in message and "\x1b" not in message


def test_saved_targets_follow_the_rules_too(custom_voice_dir: Path) -> None:
    with pytest.raises(VoiceMapError, match="letters, digits"):
        build_voice_catalog(str(custom_voice_dir), '{"narrator": "saved:a\\nb"}', custom_voice_dir / "no-voices")


def test_names_saved_voices_may_use_are_mapped(custom_voice_dir: Path) -> None:
    catalog = build_voice_catalog(
        str(custom_voice_dir),
        '{"My narrator 2.0": "Ryan", "alloy": "saved:Anna", "echo": "saved:voice_0123456789abcdef"}',
        custom_voice_dir / "no-voices",
    )
    assert catalog.speaker("my narrator 2.0") == "Ryan"
    assert catalog.alias("alloy").saved == "Anna"  # type: ignore[union-attr]


@pytest.mark.parametrize(("value", "kind"), [("[1, 2]", "an array"), ('["alloy", "Ryan"]', "an array")])
def test_an_inline_value_like_json_is_json(value: str, kind: str) -> None:
    with pytest.raises(VoiceMapError, match=f"inline JSON.*{kind}"):
        load_voice_map(value)


def test_inline_json_that_does_not_parse_says_it_was_read_as_json() -> None:
    with pytest.raises(VoiceMapError, match=r"starts with '\['.*not valid JSON"):
        load_voice_map("[1, 2")
