"""Which model names and voice names a request may use, and what they resolve to."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from server.errors import APIError, invalid_request, user_string

# The nine preset speakers of the Qwen3-TTS CustomVoice models.
QWEN_SPEAKERS: tuple[str, ...] = (
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

# OpenAI's voice names, each mapped to the Qwen speaker closest in character
# (documented in the README's voice table).
OPENAI_VOICES: dict[str, str] = {
    "alloy": "Vivian",
    "ash": "Ryan",
    "ballad": "Aiden",
    "coral": "Serena",
    "echo": "Ryan",
    "fable": "Aiden",
    "onyx": "Uncle_Fu",
    "nova": "Vivian",
    "sage": "Serena",
    "shimmer": "Sohee",
    "verse": "Dylan",
    "marin": "Ono_Anna",
    "cedar": "Eric",
}

_SPEAKER_BY_LOWER = {name.lower(): name for name in QWEN_SPEAKERS}

# tts-1, tts-1-hd, gpt-4o-mini-tts and their dated variants (tts-1-1106, gpt-4o-mini-tts-2025-03-20).
_OPENAI_MODEL = re.compile(r"^(tts-1(-hd)?(-\d{4})?|gpt-4o-mini-tts(-\d{4}-\d{2}-\d{2})?)$")
OPENAI_MODEL_NAMES: tuple[str, ...] = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
SERVER_MODEL_ALIAS = "qwen3-tts"


@dataclass(frozen=True)
class PresetVoice:
    """A request's voice resolved to a preset speaker."""

    requested: str
    speaker: str


def resolve_preset_voice(name: str) -> PresetVoice | None:
    """A Qwen speaker (any case) or an OpenAI voice name; None when it is neither."""
    key = name.strip().lower()
    if key in _SPEAKER_BY_LOWER:
        return PresetVoice(name, _SPEAKER_BY_LOWER[key])
    if key in OPENAI_VOICES:
        return PresetVoice(name, OPENAI_VOICES[key])
    return None


def accepted_voice_names(saved: tuple[str, ...] = ()) -> list[str]:
    """Every voice name a request may use: the speakers, OpenAI's names, saved voices."""
    return [*QWEN_SPEAKERS, *OPENAI_VOICES, *saved]


def unknown_voice(name: str, saved: tuple[str, ...] = ()) -> APIError:
    valid = ", ".join(accepted_voice_names(saved))
    return invalid_request(
        f"unknown voice {user_string(name)}; valid voices: {valid}", param="voice", code="invalid_voice"
    )


def _short_name(model_id: str) -> str:
    return model_id.rstrip("/").rsplit("/", 1)[-1]


def _is_local_path(model_id: str) -> bool:
    """A model directory on this machine (as opposed to a hub id): its path is not shown to
    clients, who may still name it."""
    return model_id.startswith(("/", ".", "~")) or os.path.isdir(model_id)


class ModelCatalog:
    """The model names this server answers to: OpenAI's and its own ids."""

    def __init__(self, model_id: str, clone_model_id: str) -> None:
        self.served_ids: tuple[str, ...] = tuple(
            dict.fromkeys(
                (SERVER_MODEL_ALIAS, model_id, _short_name(model_id), clone_model_id, _short_name(clone_model_id))
            )
        )
        self.public_ids = tuple(name for name in self.served_ids if not _is_local_path(name))

    def is_known(self, name: str) -> bool:
        return name in self.served_ids or bool(_OPENAI_MODEL.match(name))

    def require(self, name: str) -> None:
        if not self.is_known(name):
            raise APIError(
                404,
                f"The model {user_string(name)} does not exist; "
                f"use one of: {', '.join((*OPENAI_MODEL_NAMES, *self.public_ids))}",
                "invalid_request_error",
                "model",
                "model_not_found",
            )

    def listed(self) -> tuple[str, ...]:
        return (*OPENAI_MODEL_NAMES, *self.public_ids)
