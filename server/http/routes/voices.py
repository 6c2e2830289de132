"""The voice library: /v1/audio/voices (create, list, get, delete)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError

from server.errors import validation_error
from server.http.routes.uploads import bounded_form, read_file, text_field
from server.speech.catalog import VoiceCatalog
from server.speech.cloning import CloneService
from server.speech.design import DesignedVoiceRequest, VoiceDesigner
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
    """Multipart fields: name, audio_sample (file), ref_text?, consent?; or a JSON body
    {"type": "prompt", "name", "prompt", "script_hint"?, "language"?, "seed"?}: a voice the
    design model speaks from its description, saved like an uploaded one."""
    if request.headers.get("content-type", "").lower().startswith("application/json"):
        return await _create_designed_voice(request)
    clones: CloneService = request.app.state.clones
    limit: int = request.app.state.settings.max_upload_bytes
    async with bounded_form(request, limit) as form:
        data = await read_file(form, "audio_sample", limit)
        name = text_field(form, "name", max_chars=64, required=True)
        ref_text = text_field(form, "ref_text", max_chars=MAX_REF_TEXT_CHARS)
        consent = text_field(form, "consent", max_chars=MAX_CONSENT_CHARS)
    assert name is not None  # required=True never returns None
    await _library(request).check_name(name.strip())  # before the costly decode and prompt
    audio = await clones.decode(data, param="audio_sample")
    voice = await _library(request).create(name.strip(), audio, ref_text, consent)
    return voice.public()


async def _create_designed_voice(request: Request) -> dict[str, Any]:
    try:  # the gate has already bounded the body by MAX_JSON_BYTES
        body = DesignedVoiceRequest.model_validate_json(await request.body(), strict=True)  # JSON's types
    except ValidationError as exc:
        raise validation_error(exc.errors()) from None
    designer: VoiceDesigner = request.app.state.designer
    voice = await designer.create(body)
    return voice.public()


@listing_router.get("/v1/audio/voices")
async def list_voices(request: Request) -> dict[str, Any]:
    """Open WebUI reads this without a key, so it is open; with API_KEYS set, saved (cloned)
    voices, which are people's voices, are listed only to callers with a key."""
    catalog: VoiceCatalog = request.app.state.voice_catalog
    presets: list[dict[str, Any]] = [{"id": name, "name": name, "type": "preset"} for name in catalog.speakers]
    anonymous = key_error(request.headers.get("authorization"), request.app.state.api_keys) is not None
    for alias in catalog.aliases.values():
        entry: dict[str, Any] = {"id": alias.name, "name": alias.name, "type": "preset"}
        if alias.speaker is not None:
            entry["speaker"] = alias.speaker
        elif not anonymous:  # a saved voice's name is for callers with a key, like the voice
            entry["voice"] = alias.saved
        presets.append(entry)
    if anonymous:
        return {"voices": presets}
    # Saved voices say how their reference came to be: `audio_sample` (uploaded) or `prompt` (designed).
    saved = [voice.public() for voice in await _library(request).voices()]
    return {"voices": presets + saved}


@router.get("/v1/audio/voices/{voice_id}")
async def get_voice(voice_id: str, request: Request) -> dict[str, Any]:
    return (await _library(request).get(voice_id)).public()


@router.delete("/v1/audio/voices/{voice_id}")
async def delete_voice(voice_id: str, request: Request) -> dict[str, Any]:
    voice = await _library(request).delete(voice_id)
    return {"id": voice.id, "object": "audio.voice", "deleted": True}
