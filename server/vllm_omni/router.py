"""WS /v1/audio/speech/stream: checks the key in the forms vLLM-Omni's clients send it,
accepts, hands the connection to a session. (POST on the same path is the sentence SSE
stream; HTTP and WebSocket routes of one path do not meet.)"""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from server.speech.keys import check_key
from server.vllm_omni.session import ENDPOINT, LOG_ENDPOINT, OmniConnection
from server.web.handshake import WEBSOCKET_KEY_PARAM as KEY_PARAM
from server.web.handshake import connection_id, refuse

router = APIRouter()

# vLLM's own clients send a bearer token; LiveKit's plugin (Baseten) sends `Api-Key <key>`.
_SCHEMES = ("bearer", "api-key")
HOW = "'Authorization: Bearer <key>', 'Authorization: Api-Key <key>' or the api_key query parameter"


def presented_key(authorization: str | None, query_key: str | None) -> str | None:
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() in _SCHEMES and token.strip():
        return token.strip()
    return query_key or None


@router.websocket(ENDPOINT)
async def omni_speech_websocket(websocket: WebSocket) -> None:
    connection = connection_id(websocket)
    key = presented_key(websocket.headers.get("authorization"), websocket.query_params.get(KEY_PARAM))
    error = check_key(websocket.app.state.api_keys, key, HOW)
    if error is not None:
        await refuse(websocket, error, connection, LOG_ENDPOINT)
        return
    await websocket.accept()
    state = websocket.app.state
    settings = state.settings
    await OmniConnection(
        websocket,
        state.speech,
        state.omni_voices,
        connection,
        settings.max_json_bytes,
        state.word_timing,
    ).run()
