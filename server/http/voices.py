"""The voice library: /v1/audio/voices (create, list, get, delete)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from server.http.uploads import bounded_form, read_file, text_field
from server.speech.catalog import OPENAI_VOICES, QWEN_SPEAKERS
from server.speech.cloning import CloneService
from server.speech.keys import key_error
from server.speech.library import VoiceLibrary

router = APIRouter()
# Read without a key: Open WebUI fetches the list without sending one, and the same names are
# on /health.
listing_router = APIRouter()

MAX_REF_TEXT_CHARS = 2048
MAX_CONSENT_CHARS = 1024


def _library(request: Request) -> VoiceLibrary:
    library: VoiceLibrary = request.app.state.voice_library
    return library


@router.post("/v1/audio/voices")
async def create_voice(request: Request) -> dict[str, Any]:
    """Multipart fields: name, audio_sample (file), ref_text?, consent?"""
    clones: CloneService = request.app.state.clones
    limit: int = request.app.state.settings.max_upload_bytes
    async with bounded_form(request, limit) as form:
        data = await read_file(form, "audio_sample", limit)
        name = text_field(form, "name", max_chars=64, required=True)
        ref_text = text_field(form, "ref_text", max_chars=MAX_REF_TEXT_CHARS)
        consent = text_field(form, "consent", max_chars=MAX_CONSENT_CHARS)
    assert name is not None  # required=True never returns None
    _library(request).check_name(name.strip())  # before the costly decode and prompt
    audio = await clones.decode(data, param="audio_sample")
    voice = await _library(request).create(name.strip(), audio, ref_text, consent)
    return voice.public()


@listing_router.get("/v1/audio/voices")
async def list_voices(request: Request) -> dict[str, Any]:
    """Open WebUI reads this without a key, so it is open; with API_KEYS set, saved (cloned)
    voices, which are people's voices, are listed only to callers with a key."""
    presets: list[dict[str, Any]] = [{"id": name, "name": name, "type": "preset"} for name in QWEN_SPEAKERS]
    presets += [{"id": name, "name": name, "type": "preset", "speaker": spk} for name, spk in OPENAI_VOICES.items()]
    if key_error(request.headers.get("authorization"), request.app.state.api_keys) is not None:
        return {"voices": presets}
    saved = [{**voice.public(), "type": "cloned"} for voice in _library(request).voices()]
    return {"voices": presets + saved}


@router.get("/v1/audio/voices/{voice_id}")
async def get_voice(voice_id: str, request: Request) -> dict[str, Any]:
    return _library(request).get(voice_id).public()


@router.delete("/v1/audio/voices/{voice_id}")
async def delete_voice(voice_id: str, request: Request) -> dict[str, Any]:
    voice = await _library(request).delete(voice_id)
    return {"id": voice.id, "object": "audio.voice", "deleted": True}
