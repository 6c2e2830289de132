"""What is checked before a request body is read: the API key, the declared size and the
charset; then the body is read against its limit, before anything parses it.

FastAPI reads and parses a body before it runs a route's dependencies, so a key checked
in a dependency lets an anonymous client make the server parse whatever it sends. This
pure ASGI middleware runs first: 401 without reading, 413 from Content-Length alone or as
soon as the bytes read pass the limit (JSON bodies are read here, whole, up to
MAX_JSON_BYTES, then replayed to the app; multipart bodies are counted as the form parser
reads them, since a file part may be large).
"""

from __future__ import annotations

import email.message
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import APIError, payload_too_large, unsupported_media_type
from server.http.asgi.refusals import refuse
from server.speech.keys import key_error

# Room for the text fields and multipart boundaries around an uploaded file.
FORM_OVERHEAD_BYTES = 64 * 1024
DOC_PATHS = ("/docs", "/redoc", "/openapi.json")
# Keyed routes outside /v1/: refused here too, before their body is read.
KEYED_PATHS = frozenset({"/cache/clear"})
_BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


class BodyTooLarge(Exception):
    """Raised from `receive` when a multipart body passes its limit while being read."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body exceeds the limit of {limit} bytes")
        self.limit = limit


# Lists that Open WebUI fetches without a key: open to read (saved voices are listed only to
# callers with a key, see voices.list_voices).
OPEN_LISTINGS = frozenset({"/v1/audio/models", "/v1/audio/voices"})


def protected_path(path: str, method: str = "POST") -> bool:
    """Requests that need the key when API_KEYS is set: the API and its documentation, except
    reading the open listings."""
    if method in ("GET", "HEAD") and path in OPEN_LISTINGS:
        return False
    return path.startswith("/v1/") or path.startswith(DOC_PATHS) or path in KEYED_PATHS


class RequestGate:
    def __init__(
        self,
        app: ASGIApp,
        *,
        api_keys: tuple[bytes, ...],
        max_json_bytes: int,
        max_upload_bytes: int,
        protected: Callable[[str, str], bool] = protected_path,
        json_limits: dict[str, int] | None = None,
    ) -> None:
        self.app = app
        self.api_keys = api_keys
        self.max_json_bytes = max_json_bytes
        self.max_form_bytes = max_upload_bytes + FORM_OVERHEAD_BYTES
        self.protected = protected
        # Paths whose JSON bodies may be larger (a long-audio job's text).
        self.json_limits = json_limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if self.api_keys and self.protected(scope["path"], scope["method"]):
            error = key_error(headers.get("authorization"), self.api_keys)
            if error is not None:
                await refuse(scope, receive, send, error)
                return
        if scope["method"] in _BODYLESS_METHODS:
            await self.app(scope, receive, send)
            return
        content_type = headers.get("content-type", "")
        multipart = content_type.lower().startswith("multipart/")
        limit = self.max_form_bytes if multipart else self.json_limits.get(scope["path"], self.max_json_bytes)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await refuse(scope, receive, send, _too_large(limit))
            return
        if multipart:
            await self.app(scope, _counting(receive, limit), send)
            return
        charset = _charset(content_type)
        if charset not in (None, "utf-8", "utf8"):
            error = unsupported_media_type(f"JSON bodies must be UTF-8; charset={charset} is not supported")
            await refuse(scope, receive, send, error)
            return
        body = await _read_body(receive, limit)
        if body is None:
            await refuse(scope, receive, send, _too_large(limit))
            return
        await self.app(scope, _replaying(body, receive), send)


def _too_large(limit: int) -> APIError:
    return payload_too_large(f"the request body exceeds the limit of {limit} bytes")


def _charset(content_type: str) -> str | None:
    if not content_type:
        return None
    message = email.message.Message()
    message["content-type"] = content_type
    charset = message.get_param("charset")
    return charset.strip().lower() if isinstance(charset, str) else None


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes `limit` (the rest is never read)."""
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client left while sending
            break
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """The body already read, then the real channel (where a disconnect shows up)."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _counting(receive: Receive, limit: int) -> Receive:
    total = 0

    async def counted() -> Message:
        nonlocal total
        message = await receive()
        if message["type"] == "http.request":
            total += len(message.get("body", b""))
            if total > limit:
                raise BodyTooLarge(limit)
        return message

    return counted
