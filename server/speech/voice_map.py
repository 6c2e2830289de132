"""VOICE_MAP: names mapped to speakers or saved voices, read once at startup.

The setting is inline JSON (`{"alloy": "Zed", "echo": "saved:Anna"}`) or the path of a JSON or
YAML file holding the same object. Kokoro-FastAPI's `openai_mappings.json` shape, with the map
under a `voices` key, is read too. A target is a speaker, a saved voice that exists at startup,
or `saved:<name or id>` for one saved later (checked per request). The entries go over the
built-in OpenAI names, so a map that only moves `alloy` keeps the other twelve.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from server.speech.catalog import VoiceCatalog, VoiceMapError
from server.speech.speakers import read_checkpoint_speakers
from server.speech.voice_files import DamagedVoice, read_voice

log = logging.getLogger("qwen3-tts")


def _parse_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise VoiceMapError(f"VOICE_MAP: cannot read {path}: {exc.strerror or exc}") from exc
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
    data = _parse_json(value, "the inline value") if value.startswith("{") else _parse_file(Path(value).expanduser())
    if isinstance(data, dict) and isinstance(data.get("voices"), dict):
        data = data["voices"]  # Kokoro-FastAPI's openai_mappings.json
    if not isinstance(data, dict):
        raise VoiceMapError("VOICE_MAP must hold an object mapping names to speakers or saved voices")
    entries: dict[str, str] = {}
    for name, target in data.items():
        if not isinstance(name, str) or not isinstance(target, str):
            raise VoiceMapError(f"VOICE_MAP: {name!r} -> {target!r}: names and targets are strings")
        if name.strip().lower() in {key.lower() for key in entries}:
            raise VoiceMapError(f"VOICE_MAP: {name!r} appears twice (case does not count)")
        entries[name.strip()] = target
    return entries


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
