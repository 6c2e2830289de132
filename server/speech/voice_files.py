"""Reading the saved voice library from disk at start, entry by entry, trusting nothing.

A library directory can be damaged by hand edits, a full disk, a restore from an old
backup or another server version. Each entry is checked (metadata types, an id matching
its file name, a safe name, a reference recording that is present and decodable); a bad
entry is skipped with a warning naming its file and the reason, so one broken file never
takes down a listing, /health or the unknown-voice error. Names that shadow a preset or
repeat another saved voice's name are kept but reported: such a voice stays reachable by
its id.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf
from pydantic import TypeAdapter, ValidationError

from server.speech.catalog import OPENAI_VOICES, QWEN_SPEAKERS

log = logging.getLogger("qwen3-tts")

VOICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")
# Checked before an id from a request comes near the filesystem: no separators, no dots.
VOICE_ID = re.compile(r"^voice_[0-9a-f]{16,32}$")
PRESET_NAMES = frozenset(name.lower() for name in (*QWEN_SPEAKERS, *OPENAI_VOICES))
MAX_META_BYTES = 64 * 1024


@dataclass(frozen=True)
class SavedVoice:
    id: str
    name: str
    created_at: int
    mode: Literal["icl", "x_vector"]
    ref_text: str | None
    consent: str | None
    model_id: str
    created_ns: int = 0  # orders voices made within the same second

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "audio.voice",
            "name": self.name,
            "created_at": self.created_at,
            "mode": self.mode,
        }


# Strict: "yesterday" is not a time, "12" is not a number.
_METADATA = TypeAdapter(SavedVoice)


def valid_voice_id(value: str) -> bool:
    return bool(VOICE_ID.fullmatch(value))


class DamagedVoice(Exception):
    """An entry of the library that cannot be served; the message says why."""


@dataclass
class LibraryScan:
    voices: dict[str, SavedVoice] = field(default_factory=dict)
    problems: list[dict[str, str]] = field(default_factory=list)

    def report(self, file: str, problem: str, *, skipped: bool) -> None:
        self.problems.append({"file": file, "problem": problem, "action": "skipped" if skipped else "kept"})
        message = "skipping damaged saved voice" if skipped else "saved voice needs attention"
        log.warning(message, extra={"file": file, "reason": problem})


def read_voice(meta_path: Path) -> SavedVoice:
    """One entry, checked; raises DamagedVoice naming what is wrong."""
    try:
        if meta_path.stat().st_size > MAX_META_BYTES:
            raise DamagedVoice(f"metadata is larger than {MAX_META_BYTES} bytes")
        raw = meta_path.read_bytes()
    except OSError as exc:
        raise DamagedVoice(f"metadata is not readable ({type(exc).__name__})") from exc
    try:
        voice = _METADATA.validate_json(raw, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "metadata"
        raise DamagedVoice(f"{where}: {first['msg']}") from exc
    if not valid_voice_id(voice.id) or voice.id != meta_path.stem:
        raise DamagedVoice(f"its id {voice.id[:64]!r} does not match the file name")
    if not VOICE_NAME.fullmatch(voice.name):
        raise DamagedVoice("its name is not an allowed voice name")
    _check_recording(meta_path.with_suffix(".wav"))
    return voice


def _check_recording(path: Path) -> None:
    if not path.is_file():
        raise DamagedVoice(f"its reference recording {path.name} is missing")
    try:
        audio, _ = sf.read(path, dtype="float32", always_2d=True)
    except Exception as exc:
        raise DamagedVoice(f"its reference recording {path.name} cannot be decoded") from exc
    if audio.shape[0] == 0 or not np.all(np.isfinite(audio)):
        raise DamagedVoice(f"its reference recording {path.name} holds no usable audio")


def scan_library(root: Path) -> LibraryScan:
    scan = LibraryScan()
    for meta in sorted(root.glob("voice_*.json")) if root.is_dir() else ():
        try:
            voice = read_voice(meta)
        except DamagedVoice as exc:
            scan.report(meta.name, str(exc), skipped=True)
            continue
        scan.voices[voice.id] = voice
    _report_names(scan)
    return scan


def _report_names(scan: LibraryScan) -> None:
    by_name: dict[str, list[SavedVoice]] = {}
    for voice in sorted(scan.voices.values(), key=lambda v: (v.created_at, v.created_ns, v.id)):
        by_name.setdefault(voice.name.lower(), []).append(voice)
    for lowered, voices in by_name.items():
        if lowered in PRESET_NAMES:
            for voice in voices:
                scan.report(
                    f"{voice.id}.json", f"its name {voice.name!r} is a preset's: usable by id only", skipped=False
                )
        elif len(voices) > 1:
            first, *others = voices
            for voice in others:
                problem = f"its name {voice.name!r} is also {first.id}'s, which the name selects: usable by id only"
                scan.report(f"{voice.id}.json", problem, skipped=False)
