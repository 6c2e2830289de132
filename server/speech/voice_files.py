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
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

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
    # How the reference came to be: uploaded (`audio_sample`) or spoken by the design model
    # from a description (`prompt`, which keeps the description and the language it spoke).
    type: Literal["audio_sample", "prompt"] = "audio_sample"
    description: str | None = None
    language: str | None = None

    def public(self) -> dict[str, Any]:
        public: dict[str, Any] = {
            "id": self.id,
            "object": "audio.voice",
            "name": self.name,
            "created_at": self.created_at,
            "mode": self.mode,
            "type": self.type,
        }
        if self.type == "prompt":
            public.update(description=self.description, language=self.language, script=self.ref_text)
        return public


# Strict: "yesterday" is not a time, "12" is not a number.
_METADATA = TypeAdapter(SavedVoice)


def valid_voice_id(value: str) -> bool:
    return bool(VOICE_ID.fullmatch(value))


def looks_like_id(name: str) -> bool:
    """A name that is an id's shape in any case: it would be looked up as an id, never by name."""
    return valid_voice_id(name.strip().lower())


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


class NotRegularFile(OSError):
    """A library path that is a FIFO, a device, a socket or a directory: never read."""


def open_regular(path: Path) -> BinaryIO:
    """`path` opened for reading, if it is a regular file. Opened without blocking and checked
    on the open file itself, so a FIFO (whose open waits for a writer) is refused at once,
    even one swapped in after a directory listing."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFile(f"{path.name} is not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def is_regular(path: Path) -> bool:
    """Whether `path` is a regular file (following links); never opens it."""
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


def read_voice(meta_path: Path) -> SavedVoice:
    """One entry, checked; raises DamagedVoice naming what is wrong."""
    try:
        with open_regular(meta_path) as file:
            if os.fstat(file.fileno()).st_size > MAX_META_BYTES:
                raise DamagedVoice(f"metadata is larger than {MAX_META_BYTES} bytes")
            raw = file.read(MAX_META_BYTES + 1)
    except NotRegularFile as exc:
        raise DamagedVoice("metadata is not a regular file (a FIFO, device or directory)") from exc
    except OSError as exc:
        raise DamagedVoice(f"metadata is not readable ({type(exc).__name__})") from exc
    if len(raw) > MAX_META_BYTES:
        raise DamagedVoice(f"metadata is larger than {MAX_META_BYTES} bytes")
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


def read_recording(path: Path) -> np.ndarray:
    """A voice's reference recording (float32, channels last); raises OSError (NotRegularFile
    for a FIFO and the like) or soundfile's RuntimeError."""
    with open_regular(path) as file:
        audio, _ = sf.read(file, dtype="float32", always_2d=True)
    return np.asarray(audio)


def _check_recording(path: Path) -> None:
    try:
        audio = read_recording(path)
    except FileNotFoundError as exc:
        raise DamagedVoice(f"its reference recording {path.name} is missing") from exc
    except NotRegularFile as exc:
        raise DamagedVoice(f"its reference recording {path.name} is not a regular file") from exc
    except Exception as exc:
        raise DamagedVoice(f"its reference recording {path.name} cannot be decoded") from exc
    if audio.shape[0] == 0 or not np.all(np.isfinite(audio)):
        raise DamagedVoice(f"its reference recording {path.name} holds no usable audio")


def metadata_files(root: Path) -> dict[str, Path]:
    """The library's metadata files by voice id (whatever their kind: read_voice checks)."""
    return {path.stem: path for path in root.glob("voice_*.json")} if root.is_dir() else {}


def scan_library(root: Path) -> LibraryScan:
    """Every entry, checked (blocking file I/O: run it off the event loop)."""
    scan = LibraryScan()
    for meta in sorted(metadata_files(root).values()):
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
        if looks_like_id(lowered):
            for voice in voices:
                problem = f"its name {voice.name!r} looks like an id: usable by id only"
                scan.report(f"{voice.id}.json", problem, skipped=False)
        elif lowered in PRESET_NAMES:
            for voice in voices:
                scan.report(
                    f"{voice.id}.json", f"its name {voice.name!r} is a preset's: usable by id only", skipped=False
                )
        elif len(voices) > 1:
            first, *others = voices
            for voice in others:
                problem = f"its name {voice.name!r} is also {first.id}'s, which the name selects: usable by id only"
                scan.report(f"{voice.id}.json", problem, skipped=False)
