"""Voices described in words (the VoiceDesign model slot, DESIGN_MODEL_ID), on two paths:

- direct: a speech request that names the design model speaks in the voice its
  `instructions` describe. `voice` must then read `design` (the official SDK requires a voice,
  and a preset or saved voice's name would be one more thing the model cannot follow), and
  `instructions` are required. Every front door (HTTP, SSE, the WebSocket) goes through
  `resolve_design`, called by the speech service before any other voice is looked at.
- persistent: `VoiceDesigner.create` has the design model speak a short script (the caller's
  hint, or a calibration line in the language) and saves that audio and its text as the
  reference of a voice in the library, which the Base model then speaks like any saved voice
  (the same timbre every time, through the clone prompt cache), as Qwen's "Voice Design then
  Clone" recipe does.

A request that needs the slot while it is off is a 400 saying how to turn it on.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from server.engine.jobs import SAMPLE_RATE, SlotName
from server.errors import APIError, invalid_request, to_api_error, user_string
from server.speech.requests import MAX_INPUT_CHARS, VoiceFields
from server.speech.synthesis import ResolvedVoice, SpeechOptions, SpeechService, SpeechStats, resolve_format
from server.speech.voice_files import SavedVoice
from server.text import UnsupportedLanguageError, detect_language, normalize_language

if TYPE_CHECKING:
    from server.speech.library import VoiceLibrary

log = logging.getLogger("qwen3-tts")

# The `voice` a direct design request sends: "the voice described in instructions".
DESIGN_VOICE = "design"
# A name for the design model that does not depend on where it was loaded from.
DESIGN_MODEL_ALIAS = "qwen3-tts-voice-design"
DESIGN_SLOT: SlotName = "voice_design"
ENDPOINT = "/v1/audio/voices"
HOW_TO_ENABLE = (
    "set DESIGN_MODEL_ID to a VoiceDesign model (for example Qwen/Qwen3-TTS-12Hz-1.7B-VoiceDesign) and restart"
)
# A designed voice's script: one segment of the frame loop, well inside MAX_REFERENCE_SECONDS.
MAX_SCRIPT_CHARS = 400

# What a designed voice says when the caller gives no script: a few seconds of ordinary,
# varied speech in the voice's language (the model hears this reference before every line).
CALIBRATION_LINES: dict[str, str] = {
    "English": "Hello, it is nice to meet you. I will read a few words so you can hear my voice clearly.",
    "Chinese": "你好，很高兴认识你。我来读几句话，让你清楚地听到我的声音。",
    "Japanese": "こんにちは、はじめまして。私の声がよく聞こえるように、少し読んでみますね。",
    "Korean": "안녕하세요, 만나서 반갑습니다. 제 목소리가 잘 들리도록 몇 마디 읽어 볼게요.",
    "German": "Hallo, schön, dich kennenzulernen. Ich lese ein paar Worte, damit du meine Stimme gut hörst.",
    "French": "Bonjour, ravi de vous rencontrer. Je vais lire quelques mots pour que vous entendiez bien ma voix.",
    "Russian": "Здравствуйте, рад познакомиться. Я прочитаю несколько слов, чтобы вы хорошо услышали мой голос.",
    "Portuguese": "Olá, é um prazer conhecer você. Vou ler algumas palavras para que ouça bem a minha voz.",
    "Spanish": "Hola, encantado de conocerte. Voy a leer unas palabras para que escuches bien mi voz.",
    "Italian": "Ciao, piacere di conoscerti. Leggerò qualche parola perché tu possa sentire bene la mia voce.",
}


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


class DesignedVoiceRequest(BaseModel):
    """OpenAI's voice-from-prompt body for `POST /v1/audio/voices`, with `language` and `seed`
    as this server's extensions."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["prompt"] = Field(description="`prompt`: a voice from a text description")
    name: str = Field(min_length=1, max_length=64)
    prompt: str = Field(min_length=1, max_length=MAX_INPUT_CHARS, description="The voice described in words")
    script_hint: str | None = Field(default=None, max_length=MAX_SCRIPT_CHARS)
    language: str | None = Field(default=None, max_length=32)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)

    @field_validator("prompt")
    @classmethod
    def _described(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("prompt must describe the voice")
        return value.strip()

    @field_validator("script_hint")
    @classmethod
    def _script(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("script_hint must contain text to speak (or leave it out for a calibration line)")
        return None if value is None else value.strip()


def script_and_language(body: DesignedVoiceRequest) -> tuple[str, str]:
    """What the designed voice says and in which language: the hint (language given, or read
    from its script), or the calibration line of the language (English when none is given)."""
    language: str | None = None
    if body.language is not None and body.language.strip():
        try:
            language = normalize_language(body.language)
        except UnsupportedLanguageError as exc:
            raise invalid_request(str(exc), param="language", code="unsupported_language") from exc
    if body.script_hint is not None:
        return body.script_hint, language or detect_language(body.script_hint)
    language = language or "English"
    return CALIBRATION_LINES.get(language, CALIBRATION_LINES["English"]), language


class VoiceDesigner:
    """Creates saved voices from descriptions: the design model speaks, the library keeps it."""

    def __init__(self, speech: SpeechService, library: VoiceLibrary, min_seconds: float, max_seconds: float) -> None:
        self.speech = speech
        self.library = library
        self.min_seconds = min_seconds
        self.max_seconds = max_seconds

    @property
    def enabled(self) -> bool:
        return DESIGN_SLOT in self.speech.engine.slots

    async def create(self, body: DesignedVoiceRequest) -> SavedVoice:
        if not self.enabled:
            raise design_off("type")
        name = body.name.strip()
        await self.library.check_name(name)  # before the costly synthesis
        script, language = script_and_language(body)
        options = SpeechOptions(
            input=script, response_format="pcm", language=language, instructions=body.prompt, seed=body.seed
        )
        voice = ResolvedVoice(slot=DESIGN_SLOT, label=DESIGN_VOICE)
        plan = self.speech.plan(options, voice, resolve_format("pcm"), ENDPOINT)
        stats = SpeechStats()
        try:
            audio = await self.speech.collect(plan, stats)
        except BaseException as exc:
            self.speech.log_request(plan, stats, to_api_error(exc).status, error=str(exc) or type(exc).__name__)
            raise
        stats.mark_sent(int(audio.shape[0]))
        self.speech.log_request(plan, stats, 200)
        seconds = audio.shape[0] / SAMPLE_RATE
        if not self.min_seconds <= seconds <= self.max_seconds:
            raise invalid_request(
                f"the designed script came out {seconds:.1f} s long; a reference must last "
                f"{self.min_seconds:g} to {self.max_seconds:g} s: give a script_hint of a sentence or two",
                param="script_hint",
                code="invalid_reference_audio",
            )
        saved = await self.library.create(
            name, audio, script, None, voice_type="prompt", description=body.prompt, language=language
        )
        log.info("designed voice saved", extra={"voice_id": saved.id, "audio_seconds": round(seconds, 3)})
        return saved
