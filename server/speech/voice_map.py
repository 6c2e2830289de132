"""VOICE_MAP: names mapped to speakers or saved voices, read once at startup.

The setting is inline JSON (`{"alloy": "Zed", "echo": "saved:Anna"}`: a value that starts with
`{` or `[` is JSON) or the path of a JSON or YAML file holding the same object, read as the
library reads its files (a FIFO, a device or a directory is refused at once). Kokoro-FastAPI's
`openai_mappings.json` shape, with the map under a `voices` key, is read too. A target is a
speaker, a saved voice that exists at startup, or `saved:<name or id>` for one saved later
(checked per request). The entries go over the built-in OpenAI names, so a map that only moves
`alloy` keeps the other twelve. A mapped name follows the rules of a saved voice's name
(VOICE_NAME, not an id's shape, not the described voice `design`), and so does the name or id
after `saved:`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from server.errors import user_string
from server.speech.catalog import SAVED_PREFIX, VoiceCatalog, VoiceMapError
from server.speech.described_voices import DESIGN_VOICE
from server.speech.speakers import read_checkpoint_speakers
from server.speech.voice_files import (
    VOICE_NAME,
    DamagedVoice,
    NotRegularFile,
    looks_like_id,
    open_regular,
    read_voice,
    valid_voice_id,
)

# A map file larger than this is not a map someone wrote.
MAX_MAP_BYTES = 1024 * 1024
NAME_RULE = "1-64 characters (letters, digits, space, '_', '.', '-'), starting with a letter or digit"

log = logging.getLogger("qwen3-tts")


def _parse_file(path: Path) -> Any:
    try:
        with open_regular(path) as file:
            raw = file.read(MAX_MAP_BYTES + 1)
    except NotRegularFile as exc:
        raise VoiceMapError(f"VOICE_MAP: {path} is not a regular file (a FIFO, a device or a directory)") from exc
    except OSError as exc:
        raise VoiceMapError(f"VOICE_MAP: cannot read {path}: {exc.strerror or exc}") from exc
    if len(raw) > MAX_MAP_BYTES:
        raise VoiceMapError(f"VOICE_MAP: {path} is larger than {MAX_MAP_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VoiceMapError(f"VOICE_MAP: {path} is not UTF-8 text") from exc
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _parse_json(text, str(path))
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise VoiceMapError(f"VOICE_MAP: {path} is not valid YAML: {exc}") from exc
    raise VoiceMapError(f"VOICE_MAP: {path} must end in .json, .yaml or .yml")


def _parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise VoiceMapError(f"VOICE_MAP: {where} is not valid JSON: {exc}") from exc


def load_voice_map(value: str) -> dict[str, str]:
    """The raw map (name -> target) the setting holds; {} when it is empty."""
    value = value.strip()
    if not value:
        return {}
    inline = value.startswith(("{", "["))
    if inline:
        data = _parse_json(value, f"the inline value (it starts with {value[0]!r}, so it is read as JSON)")
    else:
        data = _parse_file(Path(value).expanduser())
    if isinstance(data, dict) and isinstance(data.get("voices"), dict):
        data = data["voices"]  # Kokoro-FastAPI's openai_mappings.json
    if not isinstance(data, dict):
        held = "an array" if isinstance(data, list) else f"a {type(data).__name__}"
        where = "is inline JSON holding" if inline else "holds"
        raise VoiceMapError(
            f"VOICE_MAP {where} {held}; it must hold an object mapping names to speakers or saved voices, "
            'such as {"alloy": "Ryan"}'
        )
    entries: dict[str, str] = {}
    for name, target in data.items():
        if not isinstance(name, str) or not isinstance(target, str):
            raise VoiceMapError(f"VOICE_MAP: {_shown(name)} -> {_shown(target)}: names and targets are strings")
        name = name.strip()
        _check_name(name)
        _check_target(name, target)
        if name.lower() in {key.lower() for key in entries}:
            raise VoiceMapError(f"VOICE_MAP: {user_string(name)} appears twice (case does not count)")
        entries[name] = target
    return entries


def _shown(value: object) -> str:
    return user_string(value) if isinstance(value, str) else type(value).__name__


def _check_name(name: str) -> None:
    """A mapped name follows the rules of a saved voice's name."""
    if not VOICE_NAME.fullmatch(name):
        raise VoiceMapError(f"VOICE_MAP: the name {user_string(name)} must be {NAME_RULE}, as a saved voice's")
    if looks_like_id(name):
        raise VoiceMapError(
            f"VOICE_MAP: the name {user_string(name)} has a voice id's shape (voice_ and hex digits): "
            "it would be looked up as an id"
        )
    if name.lower() == DESIGN_VOICE:
        raise VoiceMapError(
            f"VOICE_MAP: the name {user_string(name)} is the described voice of the design model and cannot be mapped"
        )


def _check_target(name: str, target: str) -> None:
    """A `saved:` target names a saved voice by a name it could have, or by its id."""
    stripped = target.strip()
    if not stripped.lower().startswith(SAVED_PREFIX):
        return  # a speaker's name, or a saved voice's: the catalog looks it up
    saved = stripped[len(SAVED_PREFIX) :].strip()
    if saved and not valid_voice_id(saved) and not VOICE_NAME.fullmatch(saved):
        raise VoiceMapError(
            f"VOICE_MAP: {user_string(name)} -> {user_string(target)}: a saved voice's name is {NAME_RULE}, "
            "or give its id"
        )


def saved_names_on_disk(voices_dir: Path) -> Callable[[str], bool]:
    """Whether a saved voice of a name (or id) is in VOICES_DIR now: read quietly from the
    metadata files with the library's own reader (which never waits on a FIFO); the library's
    scan reports damaged ones when it starts."""
    known: set[str] = set()
    for meta in voices_dir.glob("voice_*.json") if voices_dir.is_dir() else ():
        try:
            voice = read_voice(meta)
        except DamagedVoice:
            continue
        known.update((voice.name.lower(), meta.stem.lower()))
    return lambda name: name.strip().lower() in known


def build_voice_catalog(model_id: str, voice_map: str, voices_dir: Path) -> VoiceCatalog:
    """The catalog a server starts with: the checkpoint's speakers and VOICE_MAP over the
    built-in names. Raises VoiceMapError or CheckpointConfigError naming what is wrong."""
    speakers = read_checkpoint_speakers(model_id)
    catalog = VoiceCatalog(speakers, load_voice_map(voice_map), saved_names_on_disk(voices_dir))
    if voice_map.strip():
        log.info(
            "voice map loaded",
            extra={"voice_map": {alias.name: alias.describe() for alias in catalog.aliases.values()}},
        )
    return catalog
