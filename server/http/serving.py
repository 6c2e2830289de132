"""uvicorn's options that follow the server's settings, for every place that starts it (the
command, the tests' live servers), so they all enforce the same limits."""

from __future__ import annotations

from typing import Any

from server.config import Settings


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "http": "httptools",
        "ws": "websockets-sansio",
        # A WebSocket message is refused (close 1009) once its frame header declares more
        # than a JSON body may hold, before its payload is read or parsed.
        "ws_max_size": settings.max_json_bytes,
        "ws_ping_interval": settings.ws_ping_interval or None,
        "ws_ping_timeout": settings.ws_ping_timeout,
        "access_log": False,
        "log_config": None,  # keep the handlers the server configured
    }
