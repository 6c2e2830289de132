"""Voice resolution without a server: the presets and the names mapped onto them, the rules of
voices described in words (which requests speak one, and the 400 for every way of asking
half of it), and vLLM-Omni's task types over a resolver. tests/http/test_voice_design.py and
tests/http/test_omni_fields.py keep the same answers' HTTP shape."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server.speech.catalog import OPENAI_VOICES, QWEN_SPEAKERS, VoiceCatalog
from server.speech.described_voices import (
    DESIGN_MODEL_ALIAS,
    DESIGN_SLOT,
    DESIGN_VOICE,
    design_model_names,
    resolve_design,
    task_design_voice,
)
from server.speech.omni import OmniVoices
from server.speech.requests import SpeechRequest
from server.speech.voice_resolution import PresetVoices, ResolvedVoice
from tests.support.api_errors import refusal

DESIGN_ID = "Qwen/Qwen3-TTS-12Hz-1.7B-VoiceDesign"
DESIGN_NAMES = design_model_names(DESIGN_ID)
DESCRIPTION = "a warm, low voice, speaking slowly"


def request(**fields: Any) -> SpeechRequest:
    return SpeechRequest.model_validate({"input": "Hello there.", "voice": "alloy", **fields})


def test_a_preset_speaker_resolves_to_itself_in_any_case() -> None:
    voice = asyncio.run(PresetVoices().resolve("  vivian "))
    assert voice == ResolvedVoice(slot="custom_voice", label="Vivian", speaker="Vivian")


@pytest.mark.parametrize("name", sorted(OPENAI_VOICES))
def test_an_openai_name_resolves_to_its_speaker_and_says_so(name: str) -> None:
    voice = asyncio.run(PresetVoices().resolve(name))
    assert (voice.slot, voice.speaker, voice.label) == ("custom_voice", OPENAI_VOICES[name], f"{name}->{voice.speaker}")
    assert voice.clone is None


def test_a_mapped_name_resolves_through_the_map() -> None:
    presets = PresetVoices(VoiceCatalog(voice_map={"narrator": "Ryan"}))
    assert asyncio.run(presets.resolve("Narrator")).label == "Narrator->Ryan"


def test_an_unknown_voice_is_a_400_listing_the_valid_ones() -> None:
    error = refusal(PresetVoices().resolve("nobody"))
    assert (error.status, error.param, error.code) == (400, "voice", "invalid_voice")
    assert all(speaker in error.message for speaker in QWEN_SPEAKERS)


def test_the_design_model_names_are_the_alias_the_id_and_its_last_part() -> None:
    assert DESIGN_NAMES == (DESIGN_MODEL_ALIAS, DESIGN_ID, "Qwen3-TTS-12Hz-1.7B-VoiceDesign")
    assert design_model_names("") == ()  # the slot is off: no name means it


def test_a_request_that_names_nothing_of_design_has_no_described_voice() -> None:
    assert resolve_design(request(), DESIGN_NAMES) is None
    assert resolve_design(request(model="tts-1", instructions=DESCRIPTION), DESIGN_NAMES) is None


@pytest.mark.parametrize("model", [DESIGN_MODEL_ALIAS, DESIGN_MODEL_ALIAS.upper(), DESIGN_ID])
def test_the_design_model_with_voice_design_speaks_the_described_voice(model: str) -> None:
    voice = resolve_design(request(model=model, voice="Design", instructions=DESCRIPTION), DESIGN_NAMES)
    assert voice == ResolvedVoice(slot=DESIGN_SLOT, label=DESIGN_VOICE)


def test_half_a_design_request_is_a_400_naming_the_missing_half() -> None:
    only_voice = refusal(lambda: resolve_design(request(voice=DESIGN_VOICE, instructions=DESCRIPTION), DESIGN_NAMES))
    assert only_voice.param == "model" and DESIGN_MODEL_ALIAS in only_voice.message
    only_model = refusal(lambda: resolve_design(request(model=DESIGN_MODEL_ALIAS, voice="alloy"), DESIGN_NAMES))
    assert only_model.param == "voice" and "alloy" in only_model.message


def test_a_design_request_without_a_description_is_a_400() -> None:
    error = refusal(lambda: resolve_design(request(model=DESIGN_MODEL_ALIAS, voice=DESIGN_VOICE), DESIGN_NAMES))
    assert (error.param, error.code) == ("instructions", "missing_voice_description")
    blank = request(model=DESIGN_MODEL_ALIAS, voice=DESIGN_VOICE, instructions="   ")
    assert refusal(lambda: resolve_design(blank, DESIGN_NAMES)).code == "missing_voice_description"


@pytest.mark.parametrize(("fields", "param"), [({"model": DESIGN_MODEL_ALIAS}, "model"), ({}, "voice")])
def test_a_design_request_while_the_slot_is_off_says_how_to_turn_it_on(fields: dict[str, str], param: str) -> None:
    asked = request(voice=DESIGN_VOICE, instructions=DESCRIPTION, **fields)
    error = refusal(lambda: resolve_design(asked, ()))
    assert (error.param, error.code) == (param, "design_model_off")
    assert "DESIGN_MODEL_ID" in error.message


def test_task_type_voice_design_speaks_the_described_voice_whatever_model_and_voice_say() -> None:
    asked = request(model="some-client-model", voice="alloy", task_type="VoiceDesign", instructions=DESCRIPTION)
    assert resolve_design(asked, DESIGN_NAMES) == ResolvedVoice(slot=DESIGN_SLOT, label=DESIGN_VOICE)
    assert refusal(lambda: resolve_design(asked, ())).param == "task_type"


def test_task_type_voice_design_takes_no_reference() -> None:
    asked = request(task_type="VoiceDesign", instructions=DESCRIPTION, ref_audio="data:audio/wav;base64,AAAA")
    assert refusal(lambda: task_design_voice(asked, DESIGN_NAMES)).param == "ref_audio"


class SavedVoices:
    """A resolver that knows one saved voice besides the presets: what OmniVoices wraps."""

    def __init__(self) -> None:
        self.presets = PresetVoices()
        self.asked: list[str] = []

    async def resolve(self, name: str) -> ResolvedVoice:
        self.asked.append(name)
        if name == "my-voice":
            return ResolvedVoice(slot="base", label="saved:voice_1")
        return await self.presets.resolve(name)


def omni(saved: SavedVoices) -> OmniVoices:
    # No clone service: no request here carries an inline reference to compute a prompt from.
    return OmniVoices(saved, clones=None, max_reference_bytes=1024, design_names=DESIGN_NAMES)  # type: ignore[arg-type]


def test_without_omni_fields_the_voice_is_the_wrapped_resolvers() -> None:
    saved = SavedVoices()
    assert asyncio.run(omni(saved).for_request(request(voice="my-voice"))).slot == "base"
    assert saved.asked == ["my-voice"]


@pytest.mark.parametrize(
    ("task", "voice", "slot"), [("CustomVoice", "alloy", "custom_voice"), ("Base", "my-voice", "base")]
)
def test_a_task_type_speaks_its_own_kind_of_voice(task: str, voice: str, slot: str) -> None:
    resolved = asyncio.run(omni(SavedVoices()).for_request(request(task_type=task, voice=voice)))
    assert resolved.slot == slot


@pytest.mark.parametrize(("task", "voice"), [("CustomVoice", "my-voice"), ("Base", "alloy")])
def test_a_task_type_refuses_the_other_kind_of_voice(task: str, voice: str) -> None:
    error = refusal(omni(SavedVoices()).for_request(request(task_type=task, voice=voice)))
    assert error.param == "voice" and task in error.message


def test_reference_fields_without_a_reference_are_refused_by_name() -> None:
    assert refusal(omni(SavedVoices()).for_request(request(ref_text="hello"))).param == "ref_text"
    error = refusal(omni(SavedVoices()).for_request(request(x_vector_only_mode=True)))
    assert error.param == "x_vector_only_mode"


def test_task_type_voice_design_through_the_omni_resolver() -> None:
    asked = request(task_type="VoiceDesign", instructions=DESCRIPTION)
    assert asyncio.run(omni(SavedVoices()).for_request(asked)).slot == DESIGN_SLOT
