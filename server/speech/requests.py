"""Request and response models: the OpenAI speech contract in one file.

Unknown extra fields are ignored, as OpenAI-compatible servers commonly do; the
extensions this server understands (`language`, `seed`, `instruct`, the sampling fields)
are declared here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_INPUT_CHARS = 4096
MAX_VOICE_CHARS = 128
MIN_SPEED = 0.25
MAX_SPEED = 4.0
# Bounds of the sampling extensions; the model's defaults come from its generation_config.json.
MAX_TEMPERATURE = 2.0
MAX_TOP_K = 4096
MAX_REPETITION_PENALTY = 2.0


class VoiceRef(BaseModel):
    """OpenAI's object form of a voice: `{"id": "..."}`."""

    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=MAX_VOICE_CHARS)


VoiceName = Annotated[str, Field(min_length=1, max_length=MAX_VOICE_CHARS)]


class SamplingFields(BaseModel):
    """Sampling extensions (vLLM and the earlier Qwen3-TTS server accept them); absent fields
    keep the checkpoint's defaults. temperature 0 is greedy decoding; top_k 0 turns top-k off;
    max_new_tokens caps the codec frames of each generated piece of the input, at most the
    server's MAX_NEW_TOKENS. Shared by the JSON body and the clone endpoint's form fields."""

    model_config = ConfigDict(extra="ignore")

    temperature: float | None = Field(default=None, ge=0, le=MAX_TEMPERATURE, allow_inf_nan=False)
    top_p: float | None = Field(default=None, gt=0, le=1, allow_inf_nan=False)
    top_k: int | None = Field(default=None, ge=0, le=MAX_TOP_K)
    repetition_penalty: float | None = Field(default=None, gt=0, le=MAX_REPETITION_PENALTY, allow_inf_nan=False)
    max_new_tokens: int | None = Field(default=None, ge=2)


class VoiceFields(SamplingFields):
    """What every JSON speech request says besides its text, over HTTP and on the WebSocket."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    # Optional, as with the earlier server, vLLM and Kokoro: absent means the preset-voice model.
    model: str | None = Field(default=None, min_length=1, max_length=256)
    voice: VoiceName | VoiceRef = Field(description="A voice name (preset or saved), or the object form")
    instructions: str | None = Field(
        default=None, max_length=MAX_INPUT_CHARS, validation_alias=AliasChoices("instructions", "instruct")
    )
    response_format: str = Field(default="mp3", max_length=32)
    speed: float = Field(default=1.0, ge=MIN_SPEED, le=MAX_SPEED, allow_inf_nan=False)
    # Extensions beyond OpenAI's schema.
    language: str | None = Field(default=None, max_length=32)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)

    @field_validator("voice", mode="before")
    @classmethod
    def _one_voice_form(cls, value: Any) -> Any:
        """One clear message for either form, instead of one per union member."""
        if isinstance(value, str):
            if not 1 <= len(value) <= MAX_VOICE_CHARS:
                raise ValueError(f"a voice name has 1 to {MAX_VOICE_CHARS} characters")
            return value
        if isinstance(value, dict):
            try:
                return VoiceRef.model_validate(value)
            except ValidationError:
                raise ValueError(f'the object form is {{"id": "<1 to {MAX_VOICE_CHARS} characters>"}}') from None
        raise ValueError('voice must be a string or an object {"id": "..."}')

    @field_validator("response_format")
    @classmethod
    def _lower_format(cls, value: str) -> str:
        return value.strip().lower()

    @property
    def voice_name(self) -> str:
        return self.voice.id if isinstance(self.voice, VoiceRef) else self.voice


class SpokenText(BaseModel):
    """The text to speak, as `input`."""

    input: str = Field(min_length=1, max_length=MAX_INPUT_CHARS)

    @field_validator("input")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("input must contain text to speak")
        return value


class SpeechRequest(VoiceFields, SpokenText):
    """OpenAI's speech body, with this server's extensions."""

    stream_format: Literal["audio", "sse"] = "audio"
    # False answers one whole file with exact headers and length instead of a chunked stream.
    stream: bool = True
