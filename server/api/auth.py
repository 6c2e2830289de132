"""Bearer-key check for /v1/* (and the WebSocket), enabled when API_KEYS is set."""

from __future__ import annotations

import hmac

from fastapi import Request
from starlette.requests import HTTPConnection

from server.errors import APIError, unauthorized

# Browsers cannot set headers on a WebSocket, so the key may come as ?api_key=... there.
WEBSOCKET_KEY_PARAM = "api_key"


def _bearer_token(connection: HTTPConnection) -> str | None:
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _check(keys: tuple[bytes, ...], presented: str | None, how: str) -> APIError | None:
    if not keys:
        return None
    if presented is None:
        return unauthorized(f"Missing API key: send {how}.")
    # Compare against every key without stopping early, each in constant time.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented.encode(), key)
    return None if matched else unauthorized("Incorrect API key provided.")


def require_api_key(request: Request) -> None:
    error = _check(request.app.state.api_keys, _bearer_token(request), "'Authorization: Bearer <key>'")
    if error is not None:
        raise error


def websocket_key_error(connection: HTTPConnection) -> APIError | None:
    """The 401 for a WebSocket handshake without a valid key (bearer header or ?api_key=)."""
    presented = _bearer_token(connection) or connection.query_params.get(WEBSOCKET_KEY_PARAM) or None
    how = f"'Authorization: Bearer <key>' or the {WEBSOCKET_KEY_PARAM} query parameter"
    return _check(connection.app.state.api_keys, presented, how)
