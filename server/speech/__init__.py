"""The speech services, shared by every front door and knowing no protocol.

Front doors (server/http, server/websocket, and any raw-TCP or third-party protocol) turn
their messages into a `SpeechRequest` (requests.py) and call these services; the services
call the engine. Imports point one way only: front door -> speech -> engine, audio, text.

- requests: the request fields every front door fills in (the OpenAI body is one of them)
- voice_resolution: what a voice resolves to, the resolver shapes, the preset resolver
- described_voices: the request-time rules of voices described in words (VoiceDesign)
- planning: a request checked and planned (options, seed, token cap, first chunk)
- synthesis: the speech service, running a plan on the engine (gain, speed change)
- request_log: a request's stats and its one record (log line, recent list, metrics)
- ending: one way for a front door to end a request (client gone, an exception's outcome,
  a connection's reader and server task run and ended together)
- catalog: the voices (presets, OpenAI names) and model slots
- cloning, library, library_lock, voice_files: voice clones and the saved-voice library
- design: saving voices described in words (the top of this package: nothing imports it)
- output_cache: repeated phrases served from memory
- recent: the latency breakdown of the last requests
- keys: the API-key check
"""
