"""Health, model listings, server info and cache clearing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request

from server.audio.formats import SUPPORTED_FORMATS
from server.audio.resample import ALLOWED_SAMPLE_RATES
from server.engine.jobs import SAMPLE_RATE
from server.engine.scheduler import Engine
from server.http.auth import require_api_key
from server.speech.catalog import ModelCatalog, accepted_voice_names
from server.speech.cloning import CloneService
from server.speech.keys import key_error
from server.speech.library import VoiceLibrary
from server.speech.output_cache import OutputCache
from server.speech.recent import RecentRequests
from server.speech.requests import MAX_INPUT_CHARS
from server.text import SUPPORTED_LANGUAGES
from server.websocket.session import ENDPOINT as WEBSOCKET_PATH

router = APIRouter()
v1_router = APIRouter()

_CREATED = int(time.time())


def _voices(request: Request) -> list[str]:
    library: VoiceLibrary = request.app.state.voice_library
    return accepted_voice_names(library.names())


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    engine: Engine = request.app.state.engine
    report = engine.health()
    errors = [slot["last_error"] for slot in report["models"].values() if slot["last_error"]]
    status = "shutting_down" if not engine.accepting else ("degraded" if errors else "ok")
    if key_error(request.headers.get("authorization"), request.app.state.api_keys) is not None:
        # With API_KEYS set, an anonymous caller (a load balancer, a client waiting for the
        # model) gets the status and whether the model is loaded; model paths and load errors
        # are for callers with a key.
        return {"status": status, "model_loaded": engine.slots["custom_voice"].backend is not None}
    preset = engine.slots["custom_voice"]
    # Services add their own sections (e.g. the clone prompt cache) through this hook.
    sections: dict[str, Callable[[], Any]] = getattr(request.app.state, "health_sections", {})
    return {
        "status": status,
        # The earlier server's fields: clients poll model_loaded before sending work.
        "model_loaded": preset.backend is not None,
        "model_id": preset.model_id,
        "cuda": preset.device.startswith("cuda"),
        "voices": _voices(request),
        **report,
        **{name: describe() for name, describe in sections.items()},
    }


@router.post("/cache/clear", dependencies=[Depends(require_api_key)])
async def clear_caches(request: Request) -> dict[str, Any]:
    """Empty the output cache and the clone prompt cache; the counts cleared come back."""
    output: OutputCache = request.app.state.output_cache
    clones: CloneService = request.app.state.clones
    return {"cleared": {"output": output.clear(), "prompt": clones.cache.clear()}}


@v1_router.get("/v1/models")
async def list_models(request: Request) -> dict[str, Any]:
    catalog: ModelCatalog = request.app.state.models
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": _CREATED, "owned_by": "qwen3-tts-server"}
            for name in catalog.listed()
        ],
    }


@v1_router.get("/v1/requests/recent")
async def recent_requests(request: Request) -> dict[str, Any]:
    """The last speech requests (newest first) with the fields each one logged: status,
    voice, format and the latency breakdown (queue, load, inference, encode, first audio)."""
    recent: RecentRequests = request.app.state.recent_requests
    return {"object": "list", "data": recent.newest_first()}


@router.get("/v1/audio/models")
async def list_audio_models(request: Request) -> dict[str, Any]:
    """The shape Open WebUI's OpenAI TTS engine reads to fill its model list (it sends no
    key for it, so it is open like /health)."""
    catalog: ModelCatalog = request.app.state.models
    return {"models": [{"id": name} for name in catalog.listed()]}


@v1_router.get("/v1/info")
async def info(request: Request) -> dict[str, Any]:
    engine: Engine = request.app.state.engine
    return {
        "model_id": engine.slots["custom_voice"].model_id,
        "clone_model_id": engine.slots["base"].model_id,
        "stream_type": engine.stream_unit,
        "sample_rate": SAMPLE_RATE,
        "sample_rates": list(ALLOWED_SAMPLE_RATES),
        "formats": list(SUPPORTED_FORMATS),
        "languages": ["Auto", *SUPPORTED_LANGUAGES],
        "voices": _voices(request),
        "max_input_chars": MAX_INPUT_CHARS,
        "websocket": WEBSOCKET_PATH,
    }
