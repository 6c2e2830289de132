"""Bearer keys over ASGI: the route dependency for keyed routes outside /v1/ (the request
gate covers /v1/ and the API docs) and the WebSocket handshake's check (where a browser can
send the key only as a query parameter). The check itself is the service layer's."""

from __future__ import annotations

from fastapi import Request
from starlette.requests import HTTPConnection

from server.errors import APIError
from server.speech.keys import BEARER_HOW, bearer_token, check_key, key_error

# Browsers cannot set headers on a WebSocket, so the key may come as ?api_key=... there.
WEBSOCKET_KEY_PARAM = "api_key"


def require_api_key(request: Request) -> None:
    """A route dependency for the few keyed routes outside /v1/ (the gate covers /v1/)."""
    error = key_error(request.headers.get("authorization"), request.app.state.api_keys)
    if error is not None:
        raise error


def websocket_key_error(connection: HTTPConnection) -> APIError | None:
    """The 401 for a WebSocket handshake without a valid key (bearer header or ?api_key=)."""
    presented = bearer_token(connection.headers.get("authorization"))
    presented = presented or connection.query_params.get(WEBSOCKET_KEY_PARAM) or None
    how = f"{BEARER_HOW} or the {WEBSOCKET_KEY_PARAM} query parameter"
    return check_key(connection.app.state.api_keys, presented, how)
