"""The WebSocket messages, in both directions.

Client to server, one JSON object per text frame:

- an utterance (no `type`): `input` and the voice fields of the HTTP body (`voice`, `model`,
  `language`, `speed`, `instructions`, `seed`, the sampling fields) plus `response_format`
  (default `pcm`) and `sample_rate` (default 24000);
- a text stream: `{"type": "start", <the same fields without input>}`, then any number of
  `{"type": "delta", "text": "..."}`, then `{"type": "flush"}`.
Either may ask for `"timestamps": true` (word timestamps; needs ALIGNER_MODEL_ID).

Server to client: binary frames of audio (int16 little-endian mono PCM unless another
`response_format` was asked for), `{"event": "sentence", "index": i, "text": ...}` before
each sentence of a text stream, `{"event": "words", "segment": i, "text": ..., "start_time": ...,
"end_time": ..., "words": [{"word", "start_time", "end_time"}]}` after each sentence's audio
with `timestamps` (seconds from the start of the utterance or text stream's audio; an
`"error"` says why `words` is empty when the aligner could not time them), and it comes before
`done`; `{"event": "done", "id": ..., "finish_reason": ...}` when an utterance or a
flushed text stream is finished (a text stream's adds `"sentences"`: each sentence's reason;
the reasons are server/engine/jobs.py's FinishReason values), and `{"event": "error", "detail": ..., "code": ...,
"param": ...}` for a message that could not be served (the connection stays usable).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.errors import APIError, invalid_request, user_string, validation_error
from server.speech.requests import MAX_INPUT_CHARS, SpokenText, VoiceFields, json_object


class StreamFields(VoiceFields):
    """The voice fields of a WebSocket request: raw PCM by default, at any allowed rate (the
    output fields are the HTTP body's)."""

    response_format: str = "pcm"
    # Word timestamps (ALIGNER_MODEL_ID): a `words` event after each sentence's audio.
    timestamps: bool = False


class Utterance(StreamFields, SpokenText):
    """One whole text to speak, answered by its audio and `done`."""


class TextStart(StreamFields):
    type: Literal["start"]


class TextDelta(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    type: Literal["delta"]
    text: str = Field(max_length=MAX_INPUT_CHARS)


class TextFlush(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    type: Literal["flush"]


ClientMessage = Utterance | TextStart | TextDelta | TextFlush
_TYPED: dict[str, type[TextStart | TextDelta | TextFlush]] = {
    "start": TextStart,
    "delta": TextDelta,
    "flush": TextFlush,
}


def parse_message(raw: str | bytes) -> ClientMessage:
    """One client message, validated; raises APIError (400) saying what is wrong."""
    data = json_object(raw)
    kind = data.get("type")
    model: type[ClientMessage] = Utterance
    if kind is not None:
        # Checked as a string before the lookup: a list or an object is unhashable.
        if not isinstance(kind, str) or kind not in _TYPED:
            shown = user_string(kind) if isinstance(kind, str) else f"of JSON type {type(kind).__name__}"
            raise invalid_request(f"unknown message type {shown}; expected start, delta or flush", param="type")
        model = _TYPED[kind]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from exc


def error_event(error: APIError) -> dict[str, Any]:
    return {"event": "error", "detail": error.message, "code": error.code, "param": error.param}
