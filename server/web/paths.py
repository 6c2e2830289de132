"""The paths one front door names for another (the system routes report the WebSocket's)."""

SPEECH_WEBSOCKET = "/v1/audio/speech/ws"
