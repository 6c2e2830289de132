"""The ASGI plumbing around the HTTP routers: the request gate, the send guard, auth
dependencies, middleware, refusals, OpenAPI, CORS, the playground's files and uvicorn's options."""
