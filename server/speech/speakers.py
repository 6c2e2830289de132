"""The preset speakers a CustomVoice checkpoint has, read from its config.json before any
weights load, so listings, validation and the playground know them from the start.

A fine-tune that trains speakers of its own writes them into `talker_config.spk_id` (name ->
codec id) and `talker_config.spk_is_dialect` (name -> dialect or false); the package looks
names up lower-cased. `codec_language_id` holds the languages and the dialects (the keys with
"dialect" in them, as the package tells them apart). A hub id whose config is not in the local
cache yet falls back to the nine speakers the released checkpoints have (the documented default).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("qwen3-tts")

# The nine speakers of the released CustomVoice checkpoints, and their dialects.
RELEASED_SPEAKERS: tuple[str, ...] = (
    "Vivian",
    "Serena",
    "Uncle_Fu",
    "Dylan",
    "Eric",
    "Ryan",
    "Aiden",
    "Ono_Anna",
    "Sohee",
)
RELEASED_DIALECTS: dict[str, str] = {"Dylan": "beijing_dialect", "Eric": "sichuan_dialect"}


class CheckpointConfigError(RuntimeError):
    """A checkpoint's config.json cannot say which speakers it has; the message names why."""


@dataclass(frozen=True)
class CheckpointSpeakers:
    """The speakers of the preset slot's checkpoint (display names), their dialects, its
    languages, and where the list came from ("checkpoint" or "default")."""

    speakers: tuple[str, ...]
    dialects: dict[str, str]
    languages: tuple[str, ...] | None
    source: str


DEFAULT_SPEAKERS = CheckpointSpeakers(RELEASED_SPEAKERS, dict(RELEASED_DIALECTS), None, "default")


def display_name(key: str) -> str:
    """`uncle_fu` -> `Uncle_Fu`: the released names' spelling, for any speaker key."""
    return "_".join(part[:1].upper() + part[1:] for part in key.split("_"))


def _config_path(model_id: str) -> Path | None:
    local = Path(model_id).expanduser()
    if local.is_dir():
        return local / "config.json"
    if model_id.startswith(("/", ".", "~")):
        return None  # a directory that is not there: loading it will say so, with its status
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model_id, "config.json")
    except Exception:  # not a valid hub id either: the load reports it, as for a missing one
        return None
    return Path(cached) if isinstance(cached, str) else None


def speakers_of(config: dict[str, Any], where: str) -> CheckpointSpeakers:
    """The speakers, dialects and languages a config.json's content declares."""
    talker = config.get("talker_config")
    if not isinstance(talker, dict):
        raise CheckpointConfigError(f"{where} has no talker_config")
    spk_id = talker.get("spk_id") or {}
    if not isinstance(spk_id, dict) or not spk_id:
        kind = config.get("tts_model_type", "unknown")
        raise CheckpointConfigError(
            f"{where} declares no preset speakers (talker_config.spk_id is empty; its kind is {kind!r}, "
            "a preset-voice checkpoint is custom_voice)"
        )
    by_key = {str(key).lower(): display_name(str(key).lower()) for key in spk_id}
    dialect_of = talker.get("spk_is_dialect") or {}
    dialects = {
        by_key[str(key).lower()]: str(value)
        for key, value in dialect_of.items()
        if isinstance(value, str) and value and str(key).lower() in by_key
    }
    language_ids = talker.get("codec_language_id") or {}
    languages = tuple(str(name) for name in language_ids if "dialect" not in str(name))
    # The released order where the nine are present, the config's order for the rest.
    order = {name: index for index, name in enumerate(RELEASED_SPEAKERS)}
    names = sorted(by_key.values(), key=lambda name: (order.get(name, len(order)), list(by_key.values()).index(name)))
    return CheckpointSpeakers(tuple(names), dialects, languages or None, "checkpoint")


def read_checkpoint_speakers(model_id: str) -> CheckpointSpeakers:
    """The preset slot's speakers from its config.json (a local directory, or a hub id already
    in the local cache); the released nine when the config is not on this machine yet."""
    path = _config_path(model_id)
    if path is None or not path.is_file():
        log.info(
            "preset speakers: config.json not on this machine yet, the released nine assumed",
            extra={"model_id": model_id},
        )
        return DEFAULT_SPEAKERS
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointConfigError(f"{path} cannot be read as JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise CheckpointConfigError(f"{path} does not hold a JSON object")
    found = speakers_of(config, "MODEL_ID's config.json")
    log.info("preset speakers read from the checkpoint", extra={"speakers": list(found.speakers)})
    return found


def check_loaded_speakers(loaded: tuple[str, ...], expected: tuple[str, ...]) -> None:
    """Warn when the loaded model's speakers are not the ones the server announced (a hub
    id whose config.json was not on this machine at start: the released nine were assumed).
    Requests are validated against the announced list until the next start."""
    if expected and {name.lower() for name in loaded} != {name.lower() for name in expected}:
        log.warning(
            "the loaded model's speakers differ from those announced at start; restart to serve them",
            extra={"loaded": list(loaded), "announced": list(expected)},
        )
