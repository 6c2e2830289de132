"""The HTTP front door: FastAPI routers (routes/) and the ASGI plumbing around them (asgi/:
request gate, send guard, auth dependencies, middleware, OpenAPI, CORS, the playground's
files, uvicorn's options). Thin adapters over server/speech; what the WebSocket front doors
share with it lives below them all, in server/web/."""
