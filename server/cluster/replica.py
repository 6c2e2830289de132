"""What a replica adds to the app it serves: a response header naming the replica.

Pure ASGI (no response buffering), so streamed audio and WebSocket frames pass untouched.
Only the Ray deployment installs it; the single-process server never does.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

REPLICA_HEADER = b"x-replica"
REQUEST_ID_HEADER = b"x-request-id"


class ReplicaHeaderMiddleware:
    """Adds `X-Replica: <deployment>#<replica id>` to every HTTP response and WebSocket
    handshake.

    Serve's proxy puts an `X-Request-ID` on each request (the client's or a new one) and
    echoes it on the response; the app echoes the same id, so that copy is dropped here
    rather than sent twice. An id the app refused (and replaced) is kept, so the response
    still names the id in the server's logs."""

    def __init__(self, app: ASGIApp, replica: str) -> None:
        self.app = app
        self.header = (REPLICA_HEADER, replica.encode("latin-1"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        echoed = (REQUEST_ID_HEADER, next((v for k, v in scope["headers"] if k == REQUEST_ID_HEADER), b""))

        async def send_with_replica(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                headers = [header for header in message.get("headers", []) if tuple(header) != echoed]
                message["headers"] = [*headers, self.header]
            await send(message)

        await self.app(scope, receive, send_with_replica)
