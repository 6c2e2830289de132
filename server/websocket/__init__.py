"""WebSocket speech at /v1/audio/speech/ws: whole utterances (the earlier server's protocol)
and text streams spoken sentence by sentence as an LLM writes them."""
