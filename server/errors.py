"""One error type for every HTTP failure, serialised in OpenAI's shape, and the one place
that decides which status an exception becomes.

    {"error": {"message": str, "type": str, "param": str | null, "code": str | null}}
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from server.engine.errors import (
    EngineError,
    EngineStalledError,
    EngineStoppedError,
    InvalidSynthesisInput,
    JobTimeoutError,
    ModelLoadError,
    QueueFullError,
)

# Quoting client strings in messages: one helper for every door (re-exported here).
from server.text.quoting import USER_STRING_CHARS as USER_STRING_CHARS
from server.text.quoting import field_path as field_path
from server.text.quoting import user_string as user_string
from server.text.quoting import user_value as user_value

RETRY_AFTER_SECONDS = 1


@dataclass
class APIError(Exception):
    """An error answered to the client: status, OpenAI error fields and extra headers."""

    status: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message

    def body(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def log_refusal(error: APIError, request_id: str, endpoint: str) -> None:
    """The log line of a message refused before synthesis on a streaming front door, like
    the line of a refused HTTP request."""
    logging.getLogger("qwen3-tts").info(
        "request refused",
        extra={
            "request_id": request_id,
            "endpoint": endpoint,
            "status": error.status,
            "code": error.code,
            "param": error.param,
            "error": error.message,
        },
    )


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, "invalid_request_error", param, code)


def not_found(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(404, message, "invalid_request_error", param, code)


def conflict(message: str, param: str | None = None) -> APIError:
    return APIError(409, message, "invalid_request_error", param, "conflict")


def payload_too_large(message: str, param: str | None = None) -> APIError:
    return APIError(413, message, "invalid_request_error", param, "payload_too_large")


def unsupported_media_type(message: str) -> APIError:
    return APIError(415, message, "invalid_request_error", None, "unsupported_media_type")


def unauthorized(message: str) -> APIError:
    return APIError(
        401,
        message,
        "invalid_request_error",
        None,
        "invalid_api_key",
        {"WWW-Authenticate": "Bearer"},
    )


def validation_error(errors: Sequence[Any]) -> APIError:
    """Pydantic's validation errors as one OpenAI-shaped 400 naming the first bad field."""
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "form")]
    if first.get("type") == "json_invalid":
        return invalid_request("We could not parse the JSON body of your request: " + first.get("msg", ""))
    # Union members show up in loc (e.g. voice.str / voice.VoiceRef); the field name is the
    # first part. A part may be a key the client chose (an unknown field): quoted, cut.
    param = field_path(loc[:1]) if loc else None
    message = first.get("msg", "invalid request").removeprefix("Value error, ")
    if param is not None:
        message = f"{field_path(loc)}: {message}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return invalid_request(message, param=param)


def to_api_error(exc: BaseException) -> APIError:
    """Map any exception to the error the client receives. Unknown ones become a 500
    without internals in the message (they are logged with their traceback by the caller)."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, QueueFullError):
        return APIError(
            503,
            str(exc),
            "server_error",
            None,
            "server_busy",
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, ModelLoadError):
        return APIError(503, str(exc), "server_error", "model", "model_unavailable")
    if isinstance(exc, EngineStoppedError):
        return APIError(503, str(exc), "server_error", None, "shutting_down")
    if isinstance(exc, EngineStalledError):
        return APIError(503, str(exc), "server_error", None, "engine_stalled")
    if isinstance(exc, JobTimeoutError):
        return APIError(504, str(exc), "server_error", None, "timeout")
    if isinstance(exc, InvalidSynthesisInput):
        return invalid_request(str(exc))
    if isinstance(exc, EngineError):
        return APIError(500, f"speech synthesis failed: {exc}", "server_error", None, "synthesis_failed")
    return APIError(500, "internal server error", "server_error", None, "internal_error")
