"""The speech services, shared by every front door and knowing no protocol.

Front doors (server/http, server/websocket, and any raw-TCP or third-party protocol) turn
their messages into a `SpeechRequest` (requests.py) and call these services; the services
call the engine. Imports point one way only: front door -> speech -> engine, audio, text.

- requests: the request fields every front door fills in (the OpenAI body is one of them)
- synthesis: planning a request into segments, and the engine's chunks back out
- catalog: the voices (presets, OpenAI names) and model slots
- cloning, library, library_lock, voice_files: voice clones and the saved-voice library
- output_cache: repeated phrases served from memory
- recent: the latency breakdown of the last requests
- keys: the API-key check
"""
