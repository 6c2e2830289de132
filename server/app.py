"""create_app(settings): routes, error handlers, and the lifespan that starts and stops
the engine. Nothing is built at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.config import Settings
from server.engine.errors import EngineError
from server.engine.frame.guards import GuardLimits
from server.engine.jobs import ChunkPlan, SlotName
from server.engine.scheduler import Engine, EngineLimits
from server.engine.slots.aligner import AlignerSlot, aligner_off, check_aligner_support
from server.engine.slots.models import ModelSlot
from server.engine.slots.quantize import check_quantize_support
from server.engine.slots.qwen import LoopLimits, resolve_device, timed_load
from server.engine.watchdog import exit_process
from server.errors import APIError, to_api_error, validation_error
from server.http.asgi.cors import install_cors
from server.http.asgi.gate import RequestGate
from server.http.asgi.middleware import RequestIdMiddleware
from server.http.asgi.openapi import install_openapi
from server.http.asgi.playground import install_playground
from server.http.asgi.refusals import error_response
from server.http.asgi.sending import SendGuard
from server.http.routes import captioned, clone, jobs, speech, system, voices
from server.http.routes.metrics import install_metrics
from server.jobs.service import JOBS_PATH, build_job_runner, job_body_limit
from server.speech.catalog import ModelCatalog
from server.speech.cloning import CloneService, PromptCache
from server.speech.described_voices import DESIGN_MODEL_ALIAS, DESIGN_VOICE, HOW_TO_ENABLE, design_model_names
from server.speech.design import VoiceDesigner
from server.speech.library import LibraryVoices, VoiceLibrary
from server.speech.omni import OmniVoices
from server.speech.output_cache import OutputCache
from server.speech.pronunciation_file import Pronunciations
from server.speech.recent import RecentRequests
from server.speech.speakers import check_loaded_speakers
from server.speech.synthesis import SpeechService
from server.speech.timestamps import WordTiming
from server.speech.voice_map import build_voice_catalog
from server.vllm_omni import router as vllm_omni
from server.web.responses import OrjsonResponse
from server.websocket import router as websocket
from server.wyoming.server import WyomingServer, build_wyoming_server

log = logging.getLogger("qwen3-tts")


def build_engine(settings: Settings, exit_on_stall: bool = True, announced_speakers: tuple[str, ...] = ()) -> Engine:
    device = resolve_device(settings.device)

    guards = GuardLimits(
        silence_frames=settings.guard_silence_frames,
        silence_dbfs=settings.guard_silence_dbfs,
        loop_frames=settings.guard_loop_frames,
        tail_ratio=settings.guard_tail_ratio,
    )
    limits = LoopLimits(
        max_batch=settings.max_batch_size,
        max_length=settings.max_sequence_length,
        cuda_graphs=settings.cuda_graphs,
        guards=guards,
    )

    def loader(model_id: str) -> Any:
        return timed_load(model_id, device, settings.warmup, settings.torch_threads, limits, settings.quantize)

    def preset_loader(model_id: str) -> Any:
        loaded = loader(model_id)
        check_loaded_speakers(loaded[0].speakers, announced_speakers)
        return loaded

    slots: dict[SlotName, ModelSlot] = {
        "custom_voice": ModelSlot("custom_voice", settings.model_id, device, preset_loader),
        "base": ModelSlot("base", settings.clone_model_id, device, loader),
    }
    if settings.design_model_id:  # off unless configured: nothing is reserved for it
        slots["voice_design"] = ModelSlot("voice_design", settings.design_model_id, device, loader)
    return Engine(
        slots,
        EngineLimits(
            settings.max_queue_depth,
            settings.request_timeout,
            settings.idle_timeout,
            settings.max_batch_size,
            stall_timeout=settings.engine_stall_timeout,
            stall_grace=settings.engine_stall_grace,
        ),
        # A stuck thread cannot be stopped: the process exits for its supervisor to restart it
        # (a Ray replica reports unhealthy instead, and Serve replaces it).
        on_stall_exit=exit_process if exit_on_stall else None,
    )


def build_services(app: FastAPI, settings: Settings, engine: Engine) -> None:
    """Everything the routers reach through app.state, built around one engine."""
    app.state.engine = engine
    if app.state.metrics is not None:
        app.state.metrics.bind_engine(engine)  # before start: a preload is a load to count
    clones = CloneService(
        engine,
        PromptCache(settings.voice_cache_max),
        settings.min_reference_seconds,
        settings.max_reference_seconds,
    )
    catalog = app.state.voice_catalog
    library = VoiceLibrary(settings.voices_dir, clones, settings.clone_model_id, catalog.reserved())
    output_cache = OutputCache(settings.audio_cache_max, settings.audio_cache_max_bytes)
    app.state.clones = clones
    app.state.voice_library = library
    app.state.output_cache = output_cache
    app.state.health_sections = {
        "clone": lambda: {
            "prompt_cache": clones.cache.stats(),
            "saved_voices": len(library.known()),  # as /health just read them
            "library_problems": library.problems,
        },
        "cache": lambda: {"output": output_cache.stats(), "prompt": clones.cache.stats()},
    }
    app.state.recent_requests = RecentRequests()
    if app.state.metrics is not None:
        app.state.metrics.bind_caches({"output": output_cache.stats, "prompt": clones.cache.stats})
    # The chain of voice resolvers, composed once: vLLM-Omni's fields (task_type, an inline
    # ref_audio) around the library's resolver, which asks the presets first (so a preset name
    # always means the preset), then saved voices. A described voice never reaches the chain:
    # the planner applies its rules first (server/speech/described_voices.py).
    app.state.omni_voices = OmniVoices(
        LibraryVoices(library, catalog), clones, settings.max_upload_bytes, app.state.models.design_ids
    )
    app.state.speech = SpeechService(
        engine,
        app.state.models,
        settings.max_new_tokens,
        app.state.omni_voices,
        metrics=app.state.metrics,
        chunks=ChunkPlan(settings.stream_first_chunk_frames, settings.stream_chunk_frames),
        recent=app.state.recent_requests,
        pronunciations=app.state.pronunciations,
    )
    app.state.designer = VoiceDesigner(
        app.state.speech, library, settings.min_reference_seconds, settings.max_reference_seconds
    )
    app.state.health_sections["voice_design"] = lambda: design_health(settings.design_model_id)
    aligner = build_aligner(settings)
    app.state.word_timing = WordTiming(aligner)
    app.state.jobs = build_job_runner(settings, app.state.speech, aligner)
    app.state.health_sections["jobs"] = app.state.jobs.describe
    app.state.health_sections["aligner"] = aligner.describe if aligner is not None else aligner_off


def build_aligner(settings: Settings) -> AlignerSlot | None:
    """The word-timestamps slot on the inference device; None when ALIGNER_MODEL_ID is empty."""
    if not settings.aligner_model_id:
        return None
    return AlignerSlot(settings.aligner_model_id, resolve_device(settings.device), settings.idle_timeout)


def design_health(design_model_id: str) -> dict[str, Any]:
    """The VoiceDesign slot at a glance (its model's state is under `models` when it is on)."""
    if not design_model_id:
        return {"enabled": False, "how_to_enable": HOW_TO_ENABLE}
    return {"enabled": True, "model_id": design_model_id, "model": DESIGN_MODEL_ALIAS, "voice": DESIGN_VOICE}


async def start_wyoming(app: FastAPI, settings: Settings) -> WyomingServer | None:
    """The Wyoming listener on WYOMING_PORT (None when it is 0), over the same services."""
    app.state.wyoming = None
    if not settings.wyoming_port:
        return None
    server = build_wyoming_server(
        app.state.speech,
        app.state.voice_library,
        settings.send_timeout,
        host=settings.wyoming_host or settings.host,
        port=settings.wyoming_port,
        keyed=bool(settings.api_keys),
        catalog=app.state.voice_catalog,
        max_event_bytes=settings.max_json_bytes,
        event_timeout=settings.wyoming_event_timeout,
        idle_timeout=settings.wyoming_idle_timeout,
        max_connections=settings.wyoming_max_connections,
    )
    await server.start()
    app.state.wyoming = server
    return server


def create_app(settings: Settings, exit_on_stall: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = build_engine(settings, exit_on_stall, app.state.voice_catalog.speakers)
        build_services(app, settings, engine)
        await app.state.voice_library.load()
        await engine.start(preload=("custom_voice",) if settings.preload_model else ())
        aligner = app.state.word_timing.aligner
        if aligner is not None:
            await aligner.start()
        await app.state.jobs.start()
        wyoming: WyomingServer | None = None
        try:
            wyoming = await start_wyoming(app, settings)  # a port in use stops the start, engine included
            log.info("server ready", extra={"settings": settings.public_view()})
            yield
        finally:
            if wyoming is not None:
                await wyoming.stop()
            await app.state.jobs.stop()
            await engine.stop(settings.shutdown_grace)
            if aligner is not None:
                await aligner.stop()

    docs = settings.docs_enabled
    app = FastAPI(
        title="Qwen3-TTS server",
        description="OpenAI-compatible text-to-speech on Qwen3-TTS",
        version="0.1.0",
        lifespan=lifespan,
        default_response_class=OrjsonResponse,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.settings = settings
    check_quantize_support(settings.quantize, resolve_device(settings.device))  # fp8 without a GPU stops here
    check_aligner_support(settings.aligner_model_id)  # without its package, startup stops here
    app.state.models = ModelCatalog(
        settings.model_id, settings.clone_model_id, design_model_names(settings.design_model_id)
    )
    # The checkpoint's speakers and VOICE_MAP, checked now: a bad map stops startup.
    app.state.voice_catalog = build_voice_catalog(settings.model_id, settings.voice_map, settings.voices_dir)
    # Read now, so a bad PRONUNCIATIONS_FILE stops startup with its message.
    app.state.pronunciations = Pronunciations(
        Path(settings.pronunciations_file) if settings.pronunciations_file else None
    )
    app.state.api_keys = tuple(k.get_secret_value().encode() for k in settings.api_keys)

    install_error_handlers(app)
    # First added = innermost. The gate runs inside the request id (its refusals carry it);
    # the send guard sits closest to the app, so a stalled send never reaches the error
    # middleware outside.
    app.add_middleware(SendGuard, send_timeout=settings.send_timeout)
    app.add_middleware(
        RequestGate,
        api_keys=app.state.api_keys,
        max_json_bytes=settings.max_json_bytes,
        max_upload_bytes=settings.max_upload_bytes,
        json_limits={JOBS_PATH: max(settings.max_json_bytes, job_body_limit(settings))},
    )
    app.add_middleware(RequestIdMiddleware)
    install_metrics(app, settings.metrics_enabled)
    install_cors(app, settings.cors_origins)  # last added = outermost

    # The API key for /v1/* and the docs is checked by the gate, before any body is read; the
    # WebSocket checks its own (browsers send it as a query parameter).
    routers = (
        system.router,
        system.v1_router,
        speech.router,
        captioned.router,
        clone.router,
        voices.router,
        voices.listing_router,
        jobs.router,
        websocket.router,
        vllm_omni.router,
    )
    for router in routers:
        app.include_router(router)
    install_playground(app, settings.playground_enabled)
    # Every path's methods, for the Allow header of a 405.
    app.state.route_methods = [
        (route.path_regex, frozenset(route.methods or ()))
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute)
    ]
    install_openapi(app, settings)
    return app


def _error_response(request: Request, error: APIError) -> OrjsonResponse:
    return error_response(request.url.path, error)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of this path answers. Starlette's own Allow header names only
    the first route that matched the path, and a path here often has one route per method."""
    methods: set[str] = set()
    for pattern, route_methods in request.app.state.route_methods:
        if pattern.match(request.url.path):
            methods |= route_methods
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> OrjsonResponse:
        return _error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def request_validation_error(request: Request, exc: RequestValidationError) -> OrjsonResponse:
        return _error_response(request, validation_error(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> OrjsonResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        error = APIError(exc.status_code, str(exc.detail), "invalid_request_error", None, code, headers)
        return _error_response(request, error)

    @app.exception_handler(EngineError)
    async def engine_error(request: Request, exc: EngineError) -> OrjsonResponse:
        return _error_response(request, to_api_error(exc))

    # Anything else is a bug: answered in OpenAI's shape, and Starlette re-raises it after the
    # response so the server logs its traceback.
    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> OrjsonResponse:
        return _error_response(request, to_api_error(exc))
