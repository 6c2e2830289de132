"""Answering a request that is refused before any synthesis: one log line with the reason,
and the OpenAI-shaped error. Used by the app's exception handlers and by the request gate
(which answers before the app runs)."""

from __future__ import annotations

import logging

from starlette.types import Receive, Scope, Send

from server.errors import APIError
from server.logs import request_id_var, request_logged_var
from server.web.responses import OrjsonResponse

log = logging.getLogger("qwen3-tts")


def log_refusal(path: str, error: APIError) -> None:
    # Requests refused before synthesis (validation, auth, unknown model or voice) get their
    # own line; those that reached the engine were logged by the speech service already.
    if request_logged_var.get():
        return
    log.info(
        "request refused",
        extra={
            "request_id": request_id_var.get(),
            "endpoint": path,  # escaped and cut by the log formatter, like every field
            "status": error.status,
            "code": error.code,
            "param": error.param,
            "error": error.message,
        },
    )


def error_response(path: str, error: APIError) -> OrjsonResponse:
    log_refusal(path, error)
    return OrjsonResponse(error.body(), status_code=error.status, headers=error.headers or None)


async def refuse(scope: Scope, receive: Receive, send: Send, error: APIError) -> None:
    """Answer `error` straight from ASGI middleware."""
    await error_response(scope.get("path", ""), error)(scope, receive, send)
