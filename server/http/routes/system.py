"""Health, model listings, server info and cache clearing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from server.audio.formats import SUPPORTED_FORMATS
from server.audio.resample import ALLOWED_SAMPLE_RATES
from server.engine.jobs import SAMPLE_RATE
from server.engine.scheduler import Engine
from server.http.asgi.auth import require_api_key
from server.speech.catalog import ModelCatalog, VoiceCatalog
from server.speech.cloning import CloneService
from server.speech.keys import key_error
from server.speech.library import VoiceLibrary
from server.speech.output_cache import OutputCache
from server.speech.recent import RecentRequests
from server.speech.requests import MAX_INPUT_CHARS
from server.text import SUPPORTED_LANGUAGES
from server.web.paths import SPEECH_WEBSOCKET as WEBSOCKET_PATH

router = APIRouter()
v1_router = APIRouter()

_CREATED = int(time.time())


async def _voices(request: Request) -> list[str]:
    library: VoiceLibrary = request.app.state.voice_library
    catalog: VoiceCatalog = request.app.state.voice_catalog
    return catalog.names(await library.names())


@router.get("/health", response_model=None)
# HEAD too (health checkers send it), answered like GET; the server drops the body.
@router.head("/health", include_in_schema=False, response_model=None)
async def health(request: Request) -> dict[str, Any] | JSONResponse:
    engine: Engine = request.app.state.engine
    if engine.stalled is not None:
        # A stuck inference thread: say so (load balancers and Docker's health check read the
        # status), whoever asks; the process exits ENGINE_STALL_GRACE seconds later.
        return JSONResponse({"status": "stalled", "reason": engine.stalled}, status_code=503)
    report = engine.health()
    errors = [slot["last_error"] for slot in report["models"].values() if slot["last_error"]]
    status = "shutting_down" if not engine.accepting else ("degraded" if errors else "ok")
    if key_error(request.headers.get("authorization"), request.app.state.api_keys) is not None:
        # With API_KEYS set, an anonymous caller (a load balancer, a client waiting for the
        # model) gets the status and whether the model is loaded; model paths and load errors
        # are for callers with a key.
        return {"status": status, "model_loaded": engine.slots["custom_voice"].backend is not None}
    preset = engine.slots["custom_voice"]
    output: OutputCache = request.app.state.output_cache
    clones: CloneService = request.app.state.clones
    # Services add their own sections (e.g. the clone prompt cache) through this hook.
    sections: dict[str, Callable[[], Any]] = getattr(request.app.state, "health_sections", {})
    voices = await _voices(request)  # reads the library (off the event loop) before the sections
    return {
        "status": status,
        # The earlier server's fields: clients poll model_loaded before sending work.
        "model_loaded": preset.backend is not None,
        "model_id": preset.model_id,
        "cuda": preset.device.startswith("cuda"),
        # The earlier server listed its voices in lower case and its clients look names up
        # that way (`"vivian" in voices`); names resolve in any case, so nothing is lost.
        "voices": [name.lower() for name in voices],
        # ...and its cache sizes at the top level (the full figures are under "cache"), with
        # the output cache's capacity in clips (AUDIO_CACHE_MAX, as it was there).
        "audio_cache_size": output.stats()["size"],
        "audio_cache_max": output.max_entries,
        "voice_cache_size": clones.cache.stats()["size"],
        **report,
        **{name: describe() for name, describe in sections.items()},
    }


@router.post("/cache/clear", dependencies=[Depends(require_api_key)])
async def clear_caches(request: Request) -> dict[str, Any]:
    """Empty the output cache and the clone prompt cache; the counts cleared come back."""
    output: OutputCache = request.app.state.output_cache
    clones: CloneService = request.app.state.clones
    cleared = {"output": output.clear(), "prompt": clones.cache.clear()}
    # The earlier server's names for the same counts, for its clients.
    return {"cleared": cleared, "audio_cleared": cleared["output"], "voice_cleared": cleared["prompt"]}


@v1_router.get("/v1/models")
@v1_router.head("/v1/models", include_in_schema=False)
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
    catalog: VoiceCatalog = request.app.state.voice_catalog
    return {
        "model_id": engine.slots["custom_voice"].model_id,
        "clone_model_id": engine.slots["base"].model_id,
        # The VoiceDesign slot's model; null when the slot is off (DESIGN_MODEL_ID empty).
        "design_model_id": engine.slots["voice_design"].model_id if "voice_design" in engine.slots else None,
        # Qwen3-ForcedAligner (word timestamps); null when ALIGNER_MODEL_ID is empty.
        "aligner_model_id": request.app.state.settings.aligner_model_id or None,
        "timestamps": request.app.state.word_timing.enabled,
        "stream_type": engine.stream_unit,
        "sample_rate": SAMPLE_RATE,
        "sample_rates": list(ALLOWED_SAMPLE_RATES),
        "formats": list(SUPPORTED_FORMATS),
        "languages": ["Auto", *SUPPORTED_LANGUAGES],
        "voices": await _voices(request),
        # The preset slot's speakers (read from its checkpoint, the released nine by default),
        # their dialects, and the names mapped onto speakers or saved voices.
        "speakers": [{"name": name, "dialect": catalog.checkpoint.dialects.get(name)} for name in catalog.speakers],
        "speakers_source": catalog.checkpoint.source,
        "voice_map": {alias.name: alias.describe() for alias in catalog.aliases.values()},
        "max_input_chars": MAX_INPUT_CHARS,
        "websocket": WEBSOCKET_PATH,
    }
