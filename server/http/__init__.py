"""The HTTP front door: FastAPI routers and the ASGI plumbing around them (request gate,
send guard, auth dependencies, middleware, OpenAPI, CORS, metrics, the playground's files).
Thin adapters over server/speech; the WebSocket front doors mounted in the same ASGI app use
its ASGI helpers (the handshake's key check, JSON responses)."""
