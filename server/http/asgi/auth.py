"""Bearer keys over HTTP: the route dependency for keyed routes outside /v1/ (the request
gate covers /v1/ and the API docs). The check itself is the service layer's; the WebSocket
handshake's is server/web/handshake.py."""

from __future__ import annotations

from fastapi import Request

from server.speech.keys import key_error


def require_api_key(request: Request) -> None:
    """A route dependency for the few keyed routes outside /v1/ (the gate covers /v1/)."""
    error = key_error(request.headers.get("authorization"), request.app.state.api_keys)
    if error is not None:
        raise error
