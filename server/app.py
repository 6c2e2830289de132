"""create_app(settings): routes, error handlers, and the lifespan that starts and stops
the engine. Nothing is built at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.config import Settings
from server.engine.errors import EngineError
from server.engine.jobs import ChunkPlan, SlotName
from server.engine.models import ModelSlot
from server.engine.qwen import LoopLimits, resolve_device, timed_load
from server.engine.scheduler import Engine, EngineLimits
from server.errors import APIError, to_api_error, validation_error
from server.http import clone, speech, system, voices
from server.http.cors import install_cors
from server.http.gate import RequestGate
from server.http.metrics import install_metrics
from server.http.middleware import RequestIdMiddleware
from server.http.openapi import install_openapi
from server.http.playground import install_playground
from server.http.refusals import error_response
from server.http.responses import OrjsonResponse
from server.http.sending import SendGuard
from server.speech.catalog import ModelCatalog
from server.speech.cloning import CloneService, PromptCache
from server.speech.library import LibraryVoices, VoiceLibrary
from server.speech.output_cache import OutputCache
from server.speech.recent import RecentRequests
from server.speech.synthesis import SpeechService
from server.websocket import router as websocket

log = logging.getLogger("qwen3-tts")


def build_engine(settings: Settings) -> Engine:
    device = resolve_device(settings.device)

    limits = LoopLimits(
        max_batch=settings.max_batch_size, max_length=settings.max_sequence_length, cuda_graphs=settings.cuda_graphs
    )

    def loader(model_id: str) -> Any:
        return timed_load(model_id, device, settings.warmup, settings.torch_threads, limits)

    slots: dict[SlotName, ModelSlot] = {
        "custom_voice": ModelSlot("custom_voice", settings.model_id, device, loader),
        "base": ModelSlot("base", settings.clone_model_id, device, loader),
    }
    return Engine(
        slots,
        EngineLimits(
            settings.max_queue_depth, settings.request_timeout, settings.idle_timeout, settings.max_batch_size
        ),
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
    library = VoiceLibrary(settings.voices_dir, clones, settings.clone_model_id)
    output_cache = OutputCache(settings.audio_cache_max, settings.audio_cache_max_bytes)
    app.state.clones = clones
    app.state.voice_library = library
    app.state.output_cache = output_cache
    app.state.health_sections = {
        "clone": lambda: {
            "prompt_cache": clones.cache.stats(),
            "saved_voices": len(library.voices()),
            "library_problems": library.problems,
        },
        "cache": lambda: {"output": output_cache.stats(), "prompt": clones.cache.stats()},
    }
    app.state.recent_requests = RecentRequests()
    if app.state.metrics is not None:
        app.state.metrics.bind_caches({"output": output_cache.stats, "prompt": clones.cache.stats})
    app.state.speech = SpeechService(
        engine,
        app.state.models,
        settings.max_new_tokens,
        LibraryVoices(library),
        metrics=app.state.metrics,
        chunks=ChunkPlan(settings.stream_first_chunk_frames, settings.stream_chunk_frames),
        recent=app.state.recent_requests,
    )


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = build_engine(settings)
        build_services(app, settings, engine)
        await engine.start(preload=("custom_voice",) if settings.preload_model else ())
        log.info("server ready", extra={"settings": settings.public_view()})
        try:
            yield
        finally:
            await engine.stop(settings.shutdown_grace)

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
    app.state.models = ModelCatalog(settings.model_id, settings.clone_model_id)
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
        clone.router,
        voices.router,
        voices.listing_router,
        websocket.router,
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
