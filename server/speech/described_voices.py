"""The request-time rules of voices described in words: the `design` voice name, the names
of the design model, how to turn its slot on, and which requests speak a described voice.

A speech request that names the design model speaks in the voice its `instructions`
describe. `voice` must then read `design` (the official SDK requires a voice, and a preset or
saved voice's name would be one more thing the model cannot follow), and `instructions` are
required. Every front door (HTTP, SSE, the WebSockets) goes through `resolve_design`, which
the speech planner calls before any other voice is looked at. A request that needs the slot
while it is off is a 400 saying how to turn it on.

These rules stand alone (the designer that saves described voices, design.py, builds on the
speech service and the library), so the library and the planner can use them without an
import circle.
"""

from __future__ import annotations

from server.engine.jobs import SlotName
from server.errors import APIError, invalid_request, user_string
from server.speech.requests import VoiceFields
from server.speech.voice_resolution import ResolvedVoice

# The `voice` a direct design request sends: "the voice described in instructions".
DESIGN_VOICE = "design"
# A name for the design model that does not depend on where it was loaded from.
DESIGN_MODEL_ALIAS = "qwen3-tts-voice-design"
DESIGN_SLOT: SlotName = "voice_design"
HOW_TO_ENABLE = (
    "set DESIGN_MODEL_ID to a VoiceDesign model (for example Qwen/Qwen3-TTS-12Hz-1.7B-VoiceDesign) and restart"
)


def design_model_names(design_model_id: str) -> tuple[str, ...]:
    """The names a request may give the design model: the alias, its id, the id's last part."""
    if not design_model_id:
        return ()
    return tuple(dict.fromkeys((DESIGN_MODEL_ALIAS, design_model_id, design_model_id.rstrip("/").rsplit("/", 1)[-1])))


def design_off(param: str) -> APIError:
    return invalid_request(
        f"voices described in words need the VoiceDesign model, which this server does not serve: {HOW_TO_ENABLE}",
        param=param,
        code="design_model_off",
    )


def resolve_design(request: VoiceFields, design_names: tuple[str, ...]) -> ResolvedVoice | None:
    """The described voice of a request that names the design model (or says `voice: design`);
    None for every other request. 400 when the slot is off, when only one of the two is said,
    or when there is no description."""
    if getattr(request, "task_type", None) == "VoiceDesign":  # vLLM-Omni's way of saying it
        return task_design_voice(request, design_names)
    names_model = request.model is not None and (
        request.model in design_names or request.model.strip().lower() == DESIGN_MODEL_ALIAS
    )
    voice_is_design = request.voice_name.strip().lower() == DESIGN_VOICE
    if not names_model and not voice_is_design:
        return None
    if not design_names:
        raise design_off("model" if names_model else "voice")
    if not names_model:
        raise invalid_request(
            f"voice {DESIGN_VOICE!r} is the voice described in `instructions`, spoken by the design model: "
            f"set model to {DESIGN_MODEL_ALIAS!r}",
            param="model",
        )
    if not voice_is_design:
        raise invalid_request(
            f"the design model speaks the voice described in `instructions`, not a named one: set voice to "
            f"{DESIGN_VOICE!r} (got {user_string(request.voice_name)}); saved designed voices are spoken by "
            "naming them with another model",
            param="voice",
        )
    return described_voice(request.instructions, design_names, "model")


def task_design_voice(fields: object, design_names: tuple[str, ...]) -> ResolvedVoice:
    """vLLM-Omni's `task_type: VoiceDesign`: the voice its `instructions` describe, whatever
    `model` and `voice` say (its clients send their own); a reference does not go with it."""
    if getattr(fields, "ref_audio", None) is not None:
        raise invalid_request(
            "ref_audio clones a voice: it goes with task_type Base, not VoiceDesign", param="ref_audio"
        )
    return described_voice(getattr(fields, "instructions", None), design_names, "task_type")


def described_voice(instructions: str | None, design_names: tuple[str, ...], param: str) -> ResolvedVoice:
    """The voice `instructions` describe, spoken by the design model: 400 when its slot is off
    (naming `param`, the field that asked for it) or when there is no description."""
    if not design_names:
        raise design_off(param)
    if not (instructions or "").strip():
        raise invalid_request(
            "the design model needs `instructions`: describe the voice (for example "
            "'a warm, low voice, speaking slowly')",
            param="instructions",
            code="missing_voice_description",
        )
    return ResolvedVoice(slot=DESIGN_SLOT, label=DESIGN_VOICE)
