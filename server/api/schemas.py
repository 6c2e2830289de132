"""Request and response models: the OpenAI speech contract in one file.

Unknown extra fields are ignored, as OpenAI-compatible servers commonly do; the
extensions this server understands (`language`, `seed`, `instruct`) are declared here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

MAX_INPUT_CHARS = 4096
MIN_SPEED = 0.25
MAX_SPEED = 4.0


class VoiceRef(BaseModel):
    """OpenAI's object form of a voice: `{"id": "..."}`."""

    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=128)


class SpeechRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    model: str = Field(min_length=1, max_length=256)
    input: str = Field(max_length=MAX_INPUT_CHARS)
    voice: str | VoiceRef
    instructions: str | None = Field(
        default=None, max_length=MAX_INPUT_CHARS, validation_alias=AliasChoices("instructions", "instruct")
    )
    response_format: str = "mp3"
    speed: float = Field(default=1.0, ge=MIN_SPEED, le=MAX_SPEED)
    stream_format: Literal["audio", "sse"] = "audio"
    # Extensions beyond OpenAI's schema.
    language: str | None = Field(default=None, max_length=32)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    # False answers one whole file with exact headers and length instead of a chunked stream.
    stream: bool = True

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
