"""The fields of Wyoming's requests, read from the raw event data and checked by name.

The `wyoming` package's readers drop what they cannot read (`"voice": [1]`, `"voice":
{"nme": "x"}` or `"voice": "alloy"` all become "no voice", so the default would speak) and
keep a voice's name while dropping the language beside it. Here each field is read as sent:
one of the wrong shape is refused by an `error` naming it, and a voice's name and language
are both honoured. Unknown fields at the top of an event are let pass (Wyoming grows by
adding optional fields, as `text_format` and `context` were added), unknown fields of a
voice are refused (a misspelt name would speak in another voice). The text to speak is
checked by the same model as HTTP's `input`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from wyoming.event import Event
from wyoming.tts import SynthesizeTextFormat

from server.errors import field_path, invalid_request, user_string, user_value, validation_error
from server.speech.requests import SpokenText, VoiceFields

VOICE_FIELDS = ("name", "language", "speaker")
# VoiceFields' names for a voice's fields, as Wyoming names them (under `voice`).
_WYOMING_NAMES = {"voice": ("name",), "language": ("language",)}


@dataclass(frozen=True)
class VoiceRequest:
    """The voice a request asks for: a name (None: the default voice) and a language."""

    name: str | None = None
    language: str | None = None

    def fields(self, default: str) -> VoiceFields:
        """The voice as the speech services take it, checked as on HTTP (name and language
        named as the Wyoming fields they came from)."""
        try:
            return VoiceFields.model_validate({"voice": self.name or default, "language": self.language})
        except ValidationError as exc:
            errors = [
                {**error, "loc": ("voice", *_WYOMING_NAMES.get(str(error["loc"][0]), ()))} for error in exc.errors()
            ]
            raise validation_error(errors) from exc


def _string(data: dict[str, Any], key: str, where: str | None = None) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid_request(f"{where or key} must be a string, not {user_value(value)}", param=where or key)
    return value


def _voice(data: dict[str, Any]) -> VoiceRequest:
    voice = data.get("voice")
    if voice is None:
        return VoiceRequest()
    if not isinstance(voice, dict):
        raise invalid_request(
            f'voice must be an object such as {{"name": "Ryan"}}, not {user_value(voice)}', param="voice"
        )
    for key in voice:
        if key not in VOICE_FIELDS:
            raise invalid_request(
                f"{field_path(['voice', key])} is not a voice field; a voice has name, language and speaker",
                param="voice",
            )
    name = _string(voice, "name", "voice.name")
    language = _string(voice, "language", "voice.language")
    if _string(voice, "speaker", "voice.speaker") is not None:
        raise invalid_request("voice.speaker: these voices have no speakers; name the voice alone", param="voice")
    return VoiceRequest(name, language)


def _format_and_context(data: dict[str, Any]) -> None:
    text_format = _string(data, "text_format")
    if text_format not in (None, SynthesizeTextFormat.TEXT.value):
        raise invalid_request(
            f"text_format {user_string(text_format or '')} is not supported; send plain text (text)",
            param="text_format",
        )
    context = data.get("context")
    if context is not None and not isinstance(context, dict):
        raise invalid_request(f"context must be an object, not {user_value(context)}", param="context")


def synthesize(event: Event) -> tuple[str, VoiceRequest]:
    """`synthesize`: its text, checked as HTTP checks `input`, and its voice."""
    if "text" not in event.data:
        raise invalid_request("text is required: the text to speak", param="text")
    text = _string(event.data, "text")
    if not (text or "").strip():
        raise invalid_request("text must contain something to speak", param="text")
    try:
        SpokenText.model_validate({"input": text})
    except ValidationError as exc:
        raise validation_error([{**error, "loc": ("text",)} for error in exc.errors()]) from exc
    voice = _voice(event.data)
    _format_and_context(event.data)
    assert text is not None
    return text, voice


def synthesize_start(event: Event) -> VoiceRequest:
    """`synthesize-start`: the voice of the stream that follows."""
    voice = _voice(event.data)
    _format_and_context(event.data)
    return voice


def chunk_text(event: Event) -> str:
    """`synthesize-chunk`: more of the stream's text (any piece, whitespace included)."""
    text = _string(event.data, "text")
    if text is None:
        raise invalid_request("text is required: the next piece of the text to speak", param="text")
    return text


def ping_text(event: Event) -> str | None:
    """`ping`: the text its `pong` carries back."""
    return _string(event.data, "text")
