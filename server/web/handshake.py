"""A WebSocket's handshake, the same on both speech sockets: the connection's id, the key
check (browsers cannot set headers on a WebSocket, so the key may come as ?api_key=...),
and a refusal answered as HTTP in OpenAI's error shape, like every other route."""

from __future__ import annotations

import logging
import re
import uuid

from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket

from server.errors import APIError
from server.speech.keys import BEARER_HOW, bearer_token, check_key
from server.web.responses import OrjsonResponse

log = logging.getLogger("qwen3-tts")

WEBSOCKET_KEY_PARAM = "api_key"
# A caller's X-Request-ID names the connection when it is short and printable; each
# request on it is logged as <id>-1, <id>-2, ...
_VALID_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,100}$")


def connection_id(websocket: WebSocket) -> str:
    """The caller's X-Request-ID when it is a valid one, else a fresh id."""
    incoming = websocket.headers.get("x-request-id", "")
    return incoming if _VALID_ID.match(incoming) else uuid.uuid4().hex


def websocket_key_error(connection: HTTPConnection) -> APIError | None:
    """The 401 for a WebSocket handshake without a valid key (bearer header or ?api_key=)."""
    presented = bearer_token(connection.headers.get("authorization"))
    presented = presented or connection.query_params.get(WEBSOCKET_KEY_PARAM) or None
    how = f"{BEARER_HOW} or the {WEBSOCKET_KEY_PARAM} query parameter"
    return check_key(connection.app.state.api_keys, presented, how)


async def refuse(websocket: WebSocket, error: APIError, connection_id: str, endpoint: str) -> None:
    """Log the refused handshake and answer it as HTTP (401 in OpenAI's shape)."""
    log.info(
        "request refused",
        extra={"request_id": connection_id, "endpoint": endpoint, "status": error.status, "code": error.code},
    )
    await websocket.send_denial_response(
        OrjsonResponse(error.body(), status_code=error.status, headers=error.headers or None)
    )
