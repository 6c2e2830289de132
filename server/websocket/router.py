"""The WebSocket route: checks the key, accepts, hands the connection to a session."""

from __future__ import annotations

import logging
import re
import uuid

from fastapi import APIRouter, WebSocket

from server.http.auth import websocket_key_error
from server.http.responses import OrjsonResponse
from server.websocket.session import ENDPOINT, Connection

router = APIRouter()
log = logging.getLogger("qwen3-tts")

# A caller's X-Request-ID names the connection when it is short and printable; each
# utterance or text stream on it is logged as <id>-1, <id>-2, ...
_VALID_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,100}$")


@router.websocket(ENDPOINT)
async def speech_websocket(websocket: WebSocket) -> None:
    incoming = websocket.headers.get("x-request-id", "")
    connection_id = incoming if _VALID_ID.match(incoming) else uuid.uuid4().hex
    error = websocket_key_error(websocket)
    if error is not None:
        log.info(
            "request refused",
            extra={"request_id": connection_id, "endpoint": ENDPOINT, "status": error.status, "code": error.code},
        )
        # Answered on the handshake as HTTP 401 in OpenAI's shape, like every other route.
        await websocket.send_denial_response(
            OrjsonResponse(error.body(), status_code=error.status, headers=error.headers or None)
        )
        return
    await websocket.accept()
    max_message_bytes: int = websocket.app.state.settings.max_json_bytes
    state = websocket.app.state
    await Connection(websocket, state.speech, connection_id, max_message_bytes, state.word_timing).run()
