"""Request and response models: the OpenAI speech contract in one file.

Unknown extra fields are ignored, as OpenAI-compatible servers commonly do; the
extensions this server understands (`language`, `seed`, `instruct`) are declared here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_INPUT_CHARS = 4096
MAX_VOICE_CHARS = 128
MIN_SPEED = 0.25
MAX_SPEED = 4.0


class VoiceRef(BaseModel):
    """OpenAI's object form of a voice: `{"id": "..."}`."""

    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=MAX_VOICE_CHARS)


VoiceName = Annotated[str, Field(min_length=1, max_length=MAX_VOICE_CHARS)]


class SpeechRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    model: str = Field(min_length=1, max_length=256)
    input: str = Field(min_length=1, max_length=MAX_INPUT_CHARS)
    voice: VoiceName | VoiceRef = Field(description="A voice name (preset or saved), or the object form")
    instructions: str | None = Field(
        default=None, max_length=MAX_INPUT_CHARS, validation_alias=AliasChoices("instructions", "instruct")
    )
    response_format: str = Field(default="mp3", max_length=32)
    speed: float = Field(default=1.0, ge=MIN_SPEED, le=MAX_SPEED, allow_inf_nan=False)
    stream_format: Literal["audio", "sse"] = "audio"
    # Extensions beyond OpenAI's schema.
    language: str | None = Field(default=None, max_length=32)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    # False answers one whole file with exact headers and length instead of a chunked stream.
    stream: bool = True

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

    @field_validator("input")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("input must contain text to speak")
        return value

    @field_validator("response_format")
    @classmethod
    def _lower_format(cls, value: str) -> str:
        return value.strip().lower()

    @property
    def voice_name(self) -> str:
        return self.voice.id if isinstance(self.voice, VoiceRef) else self.voice
