"""vLLM-Omni's speech WebSocket (`WS /v1/audio/speech/stream`), as LiveKit's Qwen3-TTS plugin
and other vLLM-Omni clients speak it, over the same speech services as every front door."""
