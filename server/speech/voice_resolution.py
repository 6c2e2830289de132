"""What a request's voice resolves to, the two shapes of a resolver, and the first resolver
of every chain: the checkpoint's preset speakers.

The resolvers that build on these (saved voices in library.py, vLLM-Omni's fields in
omni.py) wrap one another; server/app.py composes the chain once and hands it to the speech
service, which asks it for a request's voice and never chooses between resolvers itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from server.engine.jobs import CloneVoice, SlotName
from server.speech.catalog import VoiceCatalog
from server.speech.requests import VoiceFields


@dataclass(frozen=True)
class ResolvedVoice:
    """A request's voice, resolved to the model slot that speaks it."""

    slot: SlotName
    label: str
    speaker: str | None = None
    clone: CloneVoice | None = None


class VoiceResolver(Protocol):
    async def resolve(self, name: str) -> ResolvedVoice:
        """The voice for a request's `voice` value; raises APIError (400) when unknown."""
        ...


class RequestVoices(Protocol):
    async def for_request(self, request: VoiceFields) -> ResolvedVoice:
        """The voice of a whole request (its `voice` and whatever other fields choose one)."""
        ...


class PresetVoices:
    """Resolves the checkpoint's speakers and the names mapped onto them (OpenAI's, VOICE_MAP's)."""

    def __init__(self, catalog: VoiceCatalog | None = None) -> None:
        self.catalog = catalog or VoiceCatalog()

    async def resolve(self, name: str) -> ResolvedVoice:
        speaker = self.catalog.speaker(name)
        if speaker is None:
            raise self.catalog.unknown_voice(name)
        label = speaker if name.strip().lower() == speaker.lower() else f"{name}->{speaker}"
        return ResolvedVoice(slot="custom_voice", label=label, speaker=speaker)
