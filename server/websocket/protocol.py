"""The WebSocket messages, in both directions.

Client to server, one JSON object per text frame:

- an utterance (no `type`): `input` and the voice fields of the HTTP body (`voice`, `model`,
  `language`, `speed`, `instructions`, `seed`, the sampling fields) plus `response_format`
  (default `pcm`) and `sample_rate` (default 24000);
- a text stream: `{"type": "start", <the same fields without input>}`, then any number of
  `{"type": "delta", "text": "..."}`, then `{"type": "flush"}`.

Server to client: binary frames of audio (int16 little-endian mono PCM unless another
`response_format` was asked for), `{"event": "sentence", "index": i, "text": ...}` before
each sentence of a text stream, `{"event": "done", "id": ...}` when an utterance or a
flushed text stream is finished, and `{"event": "error", "detail": ..., "code": ...,
"param": ...}` for a message that could not be served (the connection stays usable).
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from server.audio.resample import UnsupportedSampleRateError, check_sample_rate
from server.engine.jobs import SAMPLE_RATE
from server.errors import APIError, invalid_request, validation_error
from server.speech.requests import MAX_INPUT_CHARS, SpokenText, VoiceFields


class StreamFields(VoiceFields):
    """The voice fields of a WebSocket request: raw PCM by default, at any allowed rate."""

    response_format: str = "pcm"
    sample_rate: int = SAMPLE_RATE

    @field_validator("sample_rate")
    @classmethod
    def _allowed_rate(cls, value: int) -> int:
        try:
            return check_sample_rate(value)
        except UnsupportedSampleRateError as exc:
            raise ValueError(str(exc)) from exc


class Utterance(StreamFields, SpokenText):
    """One whole text to speak, answered by its audio and `done`."""


class TextStart(StreamFields):
    type: Literal["start"]


class TextDelta(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["delta"]
    text: str = Field(max_length=MAX_INPUT_CHARS)


class TextFlush(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["flush"]


ClientMessage = Utterance | TextStart | TextDelta | TextFlush
_TYPED: dict[str, type[TextStart | TextDelta | TextFlush]] = {
    "start": TextStart,
    "delta": TextDelta,
    "flush": TextFlush,
}


def parse_message(raw: str | bytes) -> ClientMessage:
    """One client message, validated; raises APIError (400) saying what is wrong."""
    try:
        data: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid_request(f"a message must be one JSON object: {exc}") from exc
    if not isinstance(data, dict):
        raise invalid_request("a message must be one JSON object")
    kind = data.get("type")
    model: type[ClientMessage] = Utterance
    if kind is not None:
        if kind not in _TYPED:
            raise invalid_request(f"unknown message type {kind!r}; expected start, delta or flush", param="type")
        model = _TYPED[kind]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from exc


def error_event(error: APIError) -> dict[str, Any]:
    return {"event": "error", "detail": error.message, "code": error.code, "param": error.param}
