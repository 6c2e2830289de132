"""Bearer keys (API_KEYS): the check itself, used by the request gate for /v1/* and the API
docs, by /health to decide how much it tells, by routes outside /v1/ that need the key, and
by the WebSocket handshake (where a browser can send the key only as a query parameter)."""

from __future__ import annotations

import hmac

from fastapi import Request
from starlette.requests import HTTPConnection

from server.errors import APIError, unauthorized

# Browsers cannot set headers on a WebSocket, so the key may come as ?api_key=... there.
WEBSOCKET_KEY_PARAM = "api_key"
_BEARER_HOW = "'Authorization: Bearer <key>'"


def _bearer_token(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
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


def key_error(authorization: str | None, keys: tuple[bytes, ...]) -> APIError | None:
    """None when `keys` is empty or the Authorization header carries one of them; otherwise
    the 401 to answer."""
    return _check(keys, _bearer_token(authorization), _BEARER_HOW)


def require_api_key(request: Request) -> None:
    """A route dependency for the few keyed routes outside /v1/ (the gate covers /v1/)."""
    error = key_error(request.headers.get("authorization"), request.app.state.api_keys)
    if error is not None:
        raise error


def websocket_key_error(connection: HTTPConnection) -> APIError | None:
    """The 401 for a WebSocket handshake without a valid key (bearer header or ?api_key=)."""
    presented = _bearer_token(connection.headers.get("authorization"))
    presented = presented or connection.query_params.get(WEBSOCKET_KEY_PARAM) or None
    how = f"{_BEARER_HOW} or the {WEBSOCKET_KEY_PARAM} query parameter"
    return _check(connection.app.state.api_keys, presented, how)
