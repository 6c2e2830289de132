"""Sending responses to clients that may stop reading.

`SendGuard` bounds every send of an HTTP body chunk and of a WebSocket message by
SEND_TIMEOUT, and by the request's deadline when one is in effect (the protocol-free guard
of server/speech/sending.py); past either, `ClientStalled` unwinds the response or the
WebSocket session. An HTTP connection is then closed without the body's end, so the client
can tell the audio is incomplete; a WebSocket is dropped without a close frame (its client
sees 1006), since a close frame could not be delivered to a reader that does not read. In
both cases the connection is aborted at once (ABORT_EXTENSION): closing it politely would
leave it open behind its unsent bytes until the client closes it.

`TrackedResponse` wraps a speech response so that how it really ended (sent whole, client
gone, client stalled, failed after the first byte) reaches one callback exactly once,
after the last send: the request's log line then carries its true final status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import to_api_error
from server.speech.sending import CLIENT_GONE, ClientStalled, bounded_send, send_deadline

__all__ = ["CLIENT_GONE", "ClientStalled", "Outcome", "SendGuard", "TrackedResponse"]

# The ASGI extension by which the server (server/http/asgi/uvicorn.py) offers the abort of a
# connection: {"abort": <callable>}.
ABORT_EXTENSION = "qwen3_tts.connection.abort"
# Messages that wait for the client: uvicorn's sends of these block while its buffer is full.
_GUARDED = frozenset({"http.response.body", "websocket.send", "websocket.close"})


@dataclass(frozen=True)
class Outcome:
    """How a response ended: 200 when the last byte was handed over."""

    status: int
    error: str | None = None


class SendGuard:
    """Pure ASGI middleware bounding each send that waits for the client, on HTTP and
    WebSocket connections alike; a stalled response or session ends quietly."""

    def __init__(self, app: ASGIApp, send_timeout: float) -> None:
        self.app = app
        self.send_timeout = send_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        async def guarded(message: Message) -> None:
            if message["type"] not in _GUARDED:
                await send(message)
                return
            try:
                await bounded_send(send(message), self.send_timeout)
            except ClientStalled:
                abort = scope.get("extensions", {}).get(ABORT_EXTENSION, {}).get("abort")
                if abort is not None:
                    abort()
                    # One turn of the loop: the server hears of the lost connection before the
                    # app returns, so it does not report an unfinished response.
                    await asyncio.sleep(0)
                raise

        try:
            await self.app(scope, receive, guarded)
        except ClientStalled:
            # Returning without the body's end (or a close frame) makes the server close
            # the connection.
            return


class TrackedResponse(Response):
    """Sends `inner` and reports its Outcome to `on_end` once, however it ended. Failures
    after the response started (a timeout mid-stream) end the connection early instead of
    reaching the error handlers, which could only log a misleading 500 and a traceback."""

    def __init__(
        self, inner: Response, on_end: Callable[[Outcome], Awaitable[None]], deadline: float | None = None
    ) -> None:
        self.inner = inner
        self.on_end = on_end
        self.deadline = deadline
        self.status_code = inner.status_code
        self.raw_headers = inner.raw_headers  # shared: headers added by FastAPI reach the inner response
        self.background: BackgroundTask | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.deadline is None:
            await self._send(scope, receive, send)
            return
        with send_deadline(self.deadline):
            await self._send(scope, receive, send)

    async def _send(self, scope: Scope, receive: Receive, send: Send) -> None:
        completed = disconnected = False

        async def tracking_send(message: Message) -> None:
            nonlocal completed
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                completed = True

        async def tracking_receive() -> Message:
            nonlocal disconnected
            message = await receive()
            # uvicorn also answers http.disconnect once the response is complete: only one
            # seen before the last byte means the client left.
            disconnected = disconnected or (message["type"] == "http.disconnect" and not completed)
            return message

        outcome = Outcome(CLIENT_GONE, "client disconnected")
        try:
            await self.inner(scope, tracking_receive, tracking_send)
            if completed and not disconnected:
                outcome = Outcome(200)
        except ClientStalled as stalled:
            outcome = Outcome(stalled.status, stalled.reason)
        except Exception as exc:
            outcome = Outcome(to_api_error(exc).status, str(exc) or type(exc).__name__)
        finally:
            await self.on_end(outcome)
        if self.background is not None:
            await self.background()
