"""Planning without a server: a request's options, its seed, its cap on frames, how its text is
cut, and the order in which `prepare` checks a request (described voice, model, format, and
the voice chain last, so a refused request never loads a saved voice's prompt)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server.engine.jobs import ChunkPlan, SamplingParams
from server.speech.catalog import ModelCatalog
from server.speech.described_voices import DESIGN_MODEL_ALIAS, DESIGN_SLOT, DESIGN_VOICE, design_model_names
from server.speech.planning import (
    SpeechOptions,
    SpeechPlanner,
    options_of,
    resolve_format,
    resolve_language,
)
from server.speech.requests import SpeechRequest, VoiceFields
from server.speech.voice_resolution import ResolvedVoice
from tests.support.api_errors import refusal

TOKEN_CAP = 2048
PRESET = ResolvedVoice(slot="custom_voice", label="alloy->Vivian", speaker="Vivian")
TWO_SENTENCES = "The first sentence is here. The second one follows it."


class RecordedVoices:
    """The voice chain a planner is handed: answers one preset and remembers who asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def for_request(self, request: VoiceFields) -> ResolvedVoice:
        self.asked.append(request.voice_name)
        return PRESET


def planner(voices: RecordedVoices | None = None, *, design: bool = False) -> SpeechPlanner:
    models = ModelCatalog(
        "Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice",
        "Qwen/Qwen3-TTS-12Hz-0.6B-Base",
        design_model_names("Qwen/Qwen3-TTS-12Hz-1.7B-VoiceDesign") if design else (),
    )
    return SpeechPlanner(models, voices or RecordedVoices(), TOKEN_CAP, ChunkPlan(first_frames=3, frames=12))


def request(**fields: Any) -> SpeechRequest:
    return SpeechRequest.model_validate({"input": TWO_SENTENCES, "voice": "alloy", **fields})


def test_options_carry_every_shared_field_of_a_request() -> None:
    body = request(
        response_format="WAV",
        speed=1.5,
        language="en",
        instructions="cheerfully",
        seed=7,
        temperature=0.4,
        top_k=20,
        max_new_tokens=300,
        sample_rate=16000,
        gain_db=6.0,
        initial_codec_chunk_frames=5,
    )
    options = options_of(body, "other text")
    assert options == SpeechOptions(
        input="other text",
        response_format="wav",
        speed=1.5,
        language="en",
        instructions="cheerfully",
        seed=7,
        sampling=SamplingParams(temperature=0.4, top_k=20),
        max_new_tokens=300,
        sample_rate=16000,
        gain=body.gain,
        first_chunk_frames=5,
    )
    assert options.gain == pytest.approx(10 ** (6 / 20))


def test_a_body_without_omni_fields_keeps_the_servers_first_chunk() -> None:
    assert options_of(VoiceFields.model_validate({"voice": "alloy"}), "text").first_chunk_frames is None


def test_a_plan_without_a_seed_draws_one_and_says_it_was_not_sent() -> None:
    plans = [planner().plan(SpeechOptions(TWO_SENTENCES, "mp3"), PRESET, resolve_format("mp3"), "t") for _ in range(2)]
    assert all(not plan.seed_sent and isinstance(plan.job.seed, int) for plan in plans)
    seeded = planner().plan(SpeechOptions(TWO_SENTENCES, "mp3", seed=42), PRESET, resolve_format("mp3"), "t")
    assert seeded.seed_sent and seeded.job.seed == 42


def test_a_plan_carries_the_voice_the_format_and_the_request_fields() -> None:
    options = SpeechOptions(TWO_SENTENCES, "wav", instructions="softly", sample_rate=8000, gain=0.5)
    plan = planner().plan(options, PRESET, resolve_format("wav"), "/v1/audio/speech", interactive=True)
    assert (plan.endpoint, plan.voice_label, plan.chars, plan.format.name) == (
        "/v1/audio/speech",
        PRESET.label,
        len(TWO_SENTENCES),
        "wav",
    )
    assert plan.instructions_given and plan.job.instruct == "softly"
    assert (plan.sample_rate, plan.gain, plan.speed) == (8000, 0.5, 1.0)
    assert (plan.job.slot, plan.job.speaker, plan.job.interactive) == ("custom_voice", "Vivian", True)


def test_blank_instructions_are_none_to_the_model() -> None:
    plan = planner().plan(SpeechOptions(TWO_SENTENCES, "wav", instructions=""), PRESET, resolve_format("wav"), "t")
    assert plan.job.instruct is None and not plan.instructions_given


@pytest.mark.parametrize(("requested", "cap"), [(None, TOKEN_CAP), (300, 300), (TOKEN_CAP, TOKEN_CAP)])
def test_the_token_cap_is_the_servers_unless_a_request_asks_for_less(requested: int | None, cap: int) -> None:
    options = SpeechOptions(TWO_SENTENCES, "mp3", max_new_tokens=requested)
    assert planner().plan(options, PRESET, resolve_format("mp3"), "t").job.token_cap == cap


def test_a_token_cap_above_the_servers_is_a_400() -> None:
    error = refusal(lambda: planner().token_cap_for(TOKEN_CAP + 1))
    assert error.param == "max_new_tokens" and str(TOKEN_CAP) in error.message


@pytest.mark.parametrize(("per_sentence", "speed", "segments"), [(False, 1.0, 1), (True, 1.0, 2), (False, 1.25, 2)])
def test_sentences_are_segments_of_their_own_when_asked_or_when_speed_changes(
    per_sentence: bool, speed: float, segments: int
) -> None:
    options = SpeechOptions(TWO_SENTENCES, "mp3", speed=speed)
    plan = planner().plan(options, PRESET, resolve_format("mp3"), "t", per_sentence=per_sentence)
    assert len(plan.job.segments) == segments


def test_a_first_chunk_size_changes_only_the_first_chunk() -> None:
    default = planner().plan(SpeechOptions(TWO_SENTENCES, "mp3"), PRESET, resolve_format("mp3"), "t")
    assert default.job.chunks == ChunkPlan(first_frames=3, frames=12)
    options = SpeechOptions(TWO_SENTENCES, "mp3", first_chunk_frames=8)
    assert planner().plan(options, PRESET, resolve_format("mp3"), "t").job.chunks == ChunkPlan(8, 12)


def test_the_language_is_normalised_or_read_from_the_script() -> None:
    assert resolve_language("en", "hello") == "English"
    assert resolve_language(None, "你好，世界。") == "Chinese"
    assert resolve_language("  ", "你好，世界。") == "Chinese"
    error = refusal(lambda: resolve_language("Klingon", "hello"))
    assert (error.param, error.code) == ("language", "unsupported_language")


def test_an_unknown_format_is_a_400() -> None:
    error = refusal(lambda: resolve_format("midi"))
    assert (error.status, error.param, error.code) == (400, "response_format", "unsupported_format")


def test_a_request_is_planned_with_the_voice_the_chain_answers() -> None:
    voices = RecordedVoices()
    plan = asyncio.run(planner(voices).plan_request(request(seed=3), "/v1/audio/speech/stream", per_sentence=True))
    assert voices.asked == ["alloy"]
    assert (plan.voice_label, plan.job.seed, len(plan.job.segments)) == (PRESET.label, 3, 2)


def test_an_unknown_model_is_a_404_before_the_voice_chain_is_asked() -> None:
    voices = RecordedVoices()
    error = refusal(planner(voices).prepare(request(model="whisper-1")))
    assert (error.status, error.code) == (404, "model_not_found")
    assert voices.asked == []


def test_an_unknown_format_is_refused_before_the_voice_chain_is_asked() -> None:
    voices = RecordedVoices()
    assert refusal(planner(voices).prepare(request(response_format="midi"))).code == "unsupported_format"
    assert voices.asked == []


def test_a_described_voice_never_reaches_the_voice_chain() -> None:
    voices = RecordedVoices()
    # The alias in capitals is no served id, yet no 404: a request naming the design model
    # is the described voice's.
    asked = request(model=DESIGN_MODEL_ALIAS.upper(), voice=DESIGN_VOICE, instructions="a low voice")
    voice, fmt = asyncio.run(planner(voices, design=True).prepare(asked))
    assert (voice.slot, fmt.name, voices.asked) == (DESIGN_SLOT, "mp3", [])


def test_the_described_voice_rules_come_before_the_format_check() -> None:
    asked = request(model=DESIGN_MODEL_ALIAS, voice=DESIGN_VOICE, response_format="midi")
    assert refusal(planner(design=True).prepare(asked)).param == "instructions"
