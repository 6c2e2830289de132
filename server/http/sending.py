"""Sending responses to clients that may stop reading.

A client that stops reading does not close its connection: once the socket buffers fill,
the server's `send` simply waits, for ever, and a streaming request keeps its queue slot
while it waits. `SendGuard` bounds every send of a body chunk by SEND_TIMEOUT, and by the
request's deadline when a response carries one; past either, `ClientStalled` unwinds the
response and the connection is closed without the body's end, so the client can tell the
audio is incomplete.

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

# Where a response puts its deadline (event-loop time) for SendGuard to honour.
DEADLINE_KEY = "qwen3_tts_send_deadline"
CLIENT_GONE = 499  # nginx's "client closed request": what the logs and metrics say


class ClientStalled(BaseException):
    """A body chunk could not be handed to the client in time. A BaseException, like
    CancelledError, so that no error handler turns it into a 500 and a traceback: nothing
    failed on the server's side."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Outcome:
    """How a response ended: 200 when the last byte was handed over."""

    status: int
    error: str | None = None


class SendGuard:
    """Pure ASGI middleware bounding each body send; a stalled response ends quietly."""

    def __init__(self, app: ASGIApp, send_timeout: float) -> None:
        self.app = app
        self.send_timeout = send_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()

        async def guarded(message: Message) -> None:
            if message["type"] != "http.response.body":
                await send(message)
                return
            timeout = self.send_timeout
            status, reason = CLIENT_GONE, f"the client stopped reading for {self.send_timeout:g} s"
            deadline = scope.get("state", {}).get(DEADLINE_KEY)
            if deadline is not None and deadline - loop.time() < timeout:
                timeout = max(0.0, deadline - loop.time())
                status, reason = 504, "the request deadline passed while the client was reading"
            try:
                async with asyncio.timeout(timeout):
                    await send(message)
            except TimeoutError:
                raise ClientStalled(status, reason) from None

        try:
            await self.app(scope, receive, guarded)
        except ClientStalled:
            # Returning without the body's end makes the server close the connection.
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
        if self.deadline is not None:
            scope.setdefault("state", {})[DEADLINE_KEY] = self.deadline
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
