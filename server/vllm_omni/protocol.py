"""vLLM-Omni's speech socket messages, in both directions.

Client to server, one JSON object per text frame:

- `{"type": "session.config", ...}`: the voice and output of the utterances that follow
  (sticky; another one may replace it between utterances);
- `{"type": "input.text", "text": "..."}`: more text, cut anywhere;
- `{"type": "input.done"}`: the utterance is complete (a flush: the connection stays open);
- `{"type": "session.close"}`: the end of the connection.

Server to client, per sentence: `{"type": "audio.start", "utterance_index", "sentence_index",
"sentence_text", "format", "sample_rate", "channels"}`, the audio in binary frames, then
`{"type": "audio.done", "utterance_index", "sentence_index", "total_bytes", "error"}`; after
an utterance's last sentence `{"type": "session.done", "utterance_index", "total_sentences"}`;
`{"type": "error", "message", "code", "param"}` for whatever cannot be served.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from server.errors import APIError, invalid_request, user_value, validation_error
from server.speech.requests import (
    MAX_INPUT_CHARS,
    MAX_PRONUNCIATIONS,
    MAX_SPEED,
    MIN_SPEED,
    OmniFields,
    OutputFields,
    PronunciationEntry,
    SamplingFields,
    json_object,
)


class SessionConfig(OmniFields, SamplingFields, OutputFields):
    """session.config. Unknown fields are refused by name, as vLLM-Omni refuses them, so a
    client never believes a setting took effect when it did not. The output fields
    (sample_rate, gain_db, volume_multiplier) are the HTTP body's, mapped the same way."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["session.config"]
    model: str | None = Field(default=None, min_length=1, max_length=256)
    voice: str | None = Field(default=None, min_length=1, max_length=128)
    language: str | None = Field(default=None, max_length=32)
    instructions: str | None = Field(default=None, max_length=MAX_INPUT_CHARS)
    response_format: str = Field(default="wav", max_length=32)
    speed: float = Field(default=1.0, ge=MIN_SPEED, le=MAX_SPEED, allow_inf_nan=False)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    # Read on top of the server's PRONUNCIATIONS_FILE in every sentence, as the HTTP body's.
    pronunciations: list[PronunciationEntry] | None = Field(default=None, max_length=MAX_PRONUNCIATIONS)
    # Raw PCM chunks as they are generated; false sends one encoded file per sentence.
    stream_audio: bool = False
    # Sentences are spoken as soon as they are complete; clause splitting is not offered.
    split_granularity: Literal["sentence"] = "sentence"
    # Word timestamps, as LiveKit asks for them: delivered in each sentence's audio.done
    # (both strategies) when ALIGNER_MODEL_ID is set; without it the lists are empty and say why.
    timestamp_type: Literal["word", "none"] | None = None
    timestamp_transport_strategy: Literal["sync", "async"] | None = None
    # vLLM-Omni's other timestamp transport (JSON audio.chunk frames) and its prompt
    # switches: refused with a message, below, rather than unknown.
    word_timestamps: bool | None = None
    non_streaming_mode: bool | None = None
    speaker_embedding: list[float] | None = None

    @field_validator("response_format")
    @classmethod
    def _lower_format(cls, value: str) -> str:
        return value.strip().lower()

    @field_validator("word_timestamps")
    @classmethod
    def _no_chunk_timestamps(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError(
                "word timestamps in audio.chunk frames are not offered; "
                'use timestamp_type "word" (answered in audio.done)'
            )
        return value

    @field_validator("non_streaming_mode")
    @classmethod
    def _no_prompt_mode(cls, value: bool | None) -> bool | None:
        if value is not None:
            raise ValueError("non_streaming_mode is not offered: this server builds the prompt one way")
        return value

    @field_validator("speaker_embedding")
    @classmethod
    def _no_embedding(cls, value: list[float] | None) -> list[float] | None:
        if value is not None:
            raise ValueError("speaker_embedding is not accepted: clone from ref_audio or a saved voice")
        return value

    @property
    def wants_word_timestamps(self) -> bool:
        return self.timestamp_type == "word"


class InputText(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    type: Literal["input.text"]
    text: str = Field(max_length=MAX_INPUT_CHARS)


ClientMessage = SessionConfig | InputText | Literal["input.done", "session.close"]


def parse_message(raw: str) -> ClientMessage:
    """One client message, validated; raises APIError saying what is wrong."""
    data = json_object(raw)
    kind = data.get("type")
    if kind in ("input.done", "session.close"):
        return kind  # type: ignore[no-any-return]
    model: type[SessionConfig | InputText]
    if kind == "session.config":
        model = SessionConfig
    elif kind == "input.text":
        model = InputText
    else:
        raise invalid_request(
            f"unknown message type {user_value(kind)}; "
            "expected session.config, input.text, input.done or session.close",
            param="type",
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from exc


def error_event(error: APIError) -> dict[str, Any]:
    return {"type": "error", "message": error.message, "code": error.code or error.type, "param": error.param}
