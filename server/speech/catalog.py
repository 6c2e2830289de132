"""Which model names and voice names a request may use, and what they resolve to."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from server.errors import APIError, invalid_request, user_string
from server.speech.speakers import DEFAULT_SPEAKERS, RELEASED_SPEAKERS, CheckpointSpeakers

# The nine preset speakers of the released Qwen3-TTS CustomVoice models: the default when
# the checkpoint's own list is not known (VoiceCatalog holds the list a server really serves).
QWEN_SPEAKERS: tuple[str, ...] = RELEASED_SPEAKERS

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


# tts-1, tts-1-hd, gpt-4o-mini-tts and their dated variants (tts-1-1106, gpt-4o-mini-tts-2025-03-20).
_OPENAI_MODEL = re.compile(r"^(tts-1(-hd)?(-\d{4})?|gpt-4o-mini-tts(-\d{4}-\d{2}-\d{2})?)$")
OPENAI_MODEL_NAMES: tuple[str, ...] = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
SERVER_MODEL_ALIAS = "qwen3-tts"


SAVED_PREFIX = "saved:"


class VoiceMapError(ValueError):
    """VOICE_MAP names a target that does not exist, or is malformed; the message says which."""


@dataclass(frozen=True)
class VoiceAlias:
    """A name mapped to a preset speaker or to a saved voice (by name or id)."""

    name: str
    speaker: str | None = None
    saved: str | None = None

    def describe(self) -> dict[str, str]:
        return {"speaker": self.speaker} if self.speaker is not None else {"voice": self.saved or ""}


class VoiceCatalog:
    """The preset speakers this server serves (read from the checkpoint, the released nine by
    default) and the names mapped onto them or onto saved voices: OpenAI's 13 built in,
    VOICE_MAP's entries over them."""

    def __init__(
        self,
        speakers: CheckpointSpeakers = DEFAULT_SPEAKERS,
        voice_map: dict[str, str] | None = None,
        saved_exists: Callable[[str], bool] = lambda _name: False,
    ) -> None:
        self.checkpoint = speakers
        self.speakers = speakers.speakers
        self._speaker_by_lower = {name.lower(): name for name in self.speakers}
        self.aliases: dict[str, VoiceAlias] = {}
        for name, speaker in OPENAI_VOICES.items():
            # Built-in entries whose speaker a fine-tune dropped are left out, not errors.
            if speaker.lower() in self._speaker_by_lower:
                self.aliases[name] = VoiceAlias(name, speaker=self._speaker_by_lower[speaker.lower()])
        for name, target in (voice_map or {}).items():
            alias = self._alias(name, target, saved_exists)
            self.aliases[alias.name.lower()] = alias

    def _alias(self, name: str, target: str, saved_exists: Callable[[str], bool]) -> VoiceAlias:
        name, target = name.strip(), target.strip()
        if not name or not target or len(name) > 128 or len(target) > 128:
            raise VoiceMapError(f"VOICE_MAP: {name!r} -> {target!r}: names and targets have 1 to 128 characters")
        if name.lower() in self._speaker_by_lower:
            raise VoiceMapError(f"VOICE_MAP: {name!r} is a speaker's own name and cannot be mapped")
        if target.lower().startswith(SAVED_PREFIX):
            saved = target[len(SAVED_PREFIX) :].strip()
            if not saved:
                raise VoiceMapError(f"VOICE_MAP: {name!r} -> {target!r} names no saved voice")
            return VoiceAlias(name, saved=saved)  # checked per request: it may be saved later
        speaker = self._speaker_by_lower.get(target.lower())
        if speaker is not None:
            return VoiceAlias(name, speaker=speaker)
        if saved_exists(target):
            return VoiceAlias(name, saved=target)
        raise VoiceMapError(
            f"VOICE_MAP: {name!r} -> {target!r}: no speaker and no saved voice has that name "
            f"(speakers: {', '.join(self.speakers)}); write {SAVED_PREFIX}{target} for a voice saved later"
        )

    def speaker(self, name: str) -> str | None:
        """The speaker a name means, itself or through the map; None otherwise."""
        key = name.strip().lower()
        if key in self._speaker_by_lower:
            return self._speaker_by_lower[key]
        alias = self.aliases.get(key)
        return alias.speaker if alias is not None else None

    def alias(self, name: str) -> VoiceAlias | None:
        return self.aliases.get(name.strip().lower())

    def reserved(self) -> frozenset[str]:
        """Lower-cased names a saved voice may not take: they mean a speaker or an alias."""
        return frozenset((*self._speaker_by_lower, *self.aliases))

    def names(self, saved: tuple[str, ...] = ()) -> list[str]:
        """Every voice name a request may use: the speakers, the mapped names, saved voices;
        each once (names are case-insensitive, and a hand-edited library may repeat a preset's)."""
        names: dict[str, str] = {}
        for name in (*self.speakers, *(alias.name for alias in self.aliases.values()), *saved):
            names.setdefault(name.lower(), name)
        return list(names.values())

    def unknown_voice(self, name: str, saved: tuple[str, ...] = ()) -> APIError:
        return invalid_request(
            f"unknown voice {user_string(name)}; valid voices: {', '.join(self.names(saved))}",
            param="voice",
            code="invalid_voice",
        )

    def missing_saved(self, alias: VoiceAlias) -> APIError:
        return invalid_request(
            f"voice {user_string(alias.name)} maps to the saved voice {user_string(alias.saved or '')}, "
            "which does not exist (VOICE_MAP); save a voice of that name or change the map",
            param="voice",
            code="invalid_voice",
        )


def _short_name(model_id: str) -> str:
    return model_id.rstrip("/").rsplit("/", 1)[-1]


def _is_local_path(model_id: str) -> bool:
    """A model directory on this machine (as opposed to a hub id): its path is not shown to
    clients, who may still name it."""
    return model_id.startswith(("/", ".", "~")) or os.path.isdir(model_id)


class ModelCatalog:
    """The model names this server answers to: OpenAI's and its own ids."""

    def __init__(self, model_id: str, clone_model_id: str, design_ids: tuple[str, ...] = ()) -> None:
        self.served_ids: tuple[str, ...] = tuple(
            dict.fromkeys(
                (
                    SERVER_MODEL_ALIAS,
                    model_id,
                    _short_name(model_id),
                    clone_model_id,
                    _short_name(clone_model_id),
                    *design_ids,
                )
            )
        )
        # The names of the VoiceDesign model (empty when its slot is off): server/speech/described_voices.py.
        self.design_ids = design_ids
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
