"""Health and model listing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request

from server.api.auth import key_error
from server.api.catalog import ModelCatalog
from server.engine.scheduler import Engine

router = APIRouter()
v1_router = APIRouter()

_CREATED = int(time.time())


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    engine: Engine = request.app.state.engine
    report = engine.health()
    errors = [slot["last_error"] for slot in report["models"].values() if slot["last_error"]]
    status = "shutting_down" if not engine.accepting else ("degraded" if errors else "ok")
    if key_error(request.headers.get("authorization"), request.app.state.api_keys) is not None:
        # With API_KEYS set, an anonymous caller (a load balancer) gets the status alone:
        # model paths and load errors are for callers with a key.
        return {"status": status}
    # Services add their own sections (e.g. the clone prompt cache) through this hook.
    sections: dict[str, Callable[[], dict[str, Any]]] = getattr(request.app.state, "health_sections", {})
    return {"status": status, **report, **{name: describe() for name, describe in sections.items()}}


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
