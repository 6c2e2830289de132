"""Voices described in words (the VoiceDesign model slot, DESIGN_MODEL_ID), on two paths:

- direct: a speech request that names the design model speaks in the voice its
  `instructions` describe; its rules live in described_voices.py, which the planner applies
  before any other voice is looked at.
- persistent: `VoiceDesigner.create` has the design model speak a short script (the caller's
  hint, or a calibration line in the language) and saves that audio and its text as the
  reference of a voice in the library, which the Base model then speaks like any saved voice
  (the same timbre every time, through the clone prompt cache), as Qwen's "Voice Design then
  Clone" recipe does.

The designer sits at the top of the speech services: it plans and runs through the speech
service and saves through the library, and nothing below imports it.
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from server.engine.jobs import SAMPLE_RATE
from server.errors import invalid_request, to_api_error
from server.speech.described_voices import DESIGN_SLOT, DESIGN_VOICE, design_off
from server.speech.library import VoiceLibrary
from server.speech.planning import SpeechOptions, resolve_format
from server.speech.request_log import SpeechStats
from server.speech.requests import MAX_INPUT_CHARS
from server.speech.synthesis import SpeechService
from server.speech.voice_files import SavedVoice
from server.speech.voice_resolution import ResolvedVoice
from server.text import UnsupportedLanguageError, detect_language, normalize_language

log = logging.getLogger("qwen3-tts")

ENDPOINT = "/v1/audio/voices"
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
