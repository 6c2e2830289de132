"""The HTTP routers and what only they share: the speech, captioned, clone, voice and system
routes, /metrics, and the helpers behind them (whole-file answers, streamed and cached responses,
uploads, header names). A router imports these helpers, never another router."""
