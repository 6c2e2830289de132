"""GET /metrics (Prometheus text exposition) and the middleware that counts every HTTP
request by route and status."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.metrics import CONTENT_TYPE, Metrics

router = APIRouter()

# Label for requests that matched no route: raw paths would make label cardinality unbounded.
UNMATCHED = "unmatched"


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    registry: Metrics = request.app.state.metrics
    return Response(registry.render(), media_type=CONTENT_TYPE)


class RequestMetricsMiddleware:
    """Counts each HTTP request once, labelled by its route template (`/v1/audio/speech`,
    not the raw path) and the status it was answered with. Pure ASGI, so streamed bodies
    pass through unbuffered; the status comes from http.response.start."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the outer error middleware answers when the app raises

        async def send_recording_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_recording_status)
        finally:
            # The router stores the matched route in the (shared) scope while dispatching.
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or UNMATCHED
            self.metrics.count_request(endpoint, status)


def install_metrics(app: FastAPI, enabled: bool) -> None:
    """Add /metrics and request counting, or neither (then /metrics is a 404).
    `app.state.metrics` is the Metrics object, or None when disabled."""
    if not enabled:
        app.state.metrics = None
        return
    app.state.metrics = Metrics()
    app.add_middleware(RequestMetricsMiddleware, metrics=app.state.metrics)
    app.include_router(router)
