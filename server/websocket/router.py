"""The WebSocket route: checks the key, accepts, hands the connection to a session."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from server.web.handshake import connection_id, refuse, websocket_key_error
from server.web.paths import SPEECH_WEBSOCKET as ENDPOINT
from server.websocket.session import Connection

router = APIRouter()


@router.websocket(ENDPOINT)
async def speech_websocket(websocket: WebSocket) -> None:
    connection = connection_id(websocket)  # each utterance or text stream: <id>-1, <id>-2, ...
    error = websocket_key_error(websocket)
    if error is not None:
        await refuse(websocket, error, connection, ENDPOINT)
        return
    await websocket.accept()
    max_message_bytes: int = websocket.app.state.settings.max_json_bytes
    state = websocket.app.state
    await Connection(websocket, state.speech, connection, max_message_bytes, state.word_timing).run()
