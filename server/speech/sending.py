"""Sending to clients that may stop reading, for every front door.

A client that stops reading does not close its connection: once the socket buffers fill,
the server's send simply waits, for ever, and a streaming request keeps its queue slot
while it waits. Every send of a response's audio or events is therefore bounded by
SEND_TIMEOUT, and by the request's deadline (REQUEST_TIMEOUT covers sending too) while
one is in effect; past either, `ClientStalled` unwinds the request so its work stops and
its slot is freed. The HTTP and WebSocket doors apply it to every ASGI send (one
middleware, server/http/asgi/sending.py); a door on a raw socket awaits its writes through
`bounded_send` the same way.

Giving up on such a client also means dropping its connection: closing it politely would
wait for the unsent bytes to drain, which never happens, and leave the socket open with
megabytes queued until the client closes it. Every front door aborts it instead
(`abort_connection`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

CLIENT_GONE = 499  # nginx's "client closed request": what the logs and metrics say

# The deadline (event-loop time) of the request whose audio is being sent, if any: set by
# the code that streams it, read by the guard at each send made from that context.
send_deadline_var: ContextVar[float | None] = ContextVar("send_deadline", default=None)


class ClientStalled(BaseException):
    """A send could not be handed to the client in time. A BaseException, like
    CancelledError, so that no error handler turns it into a 500 and a traceback: nothing
    failed on the server's side."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@contextmanager
def send_deadline(deadline: float) -> Iterator[None]:
    """Bound the sends made inside the block by `deadline` (event-loop time) too."""
    token = send_deadline_var.set(deadline)
    try:
        yield
    finally:
        send_deadline_var.reset(token)


async def bounded_send(send: Awaitable[None], send_timeout: float) -> None:
    """Await one send, for at most `send_timeout` and not past the deadline in effect;
    raises ClientStalled (499 for a stalled reader, 504 for a passed deadline)."""
    loop = asyncio.get_running_loop()
    timeout = send_timeout
    status, reason = CLIENT_GONE, f"the client stopped reading for {send_timeout:g} s"
    deadline = send_deadline_var.get()
    if deadline is not None and deadline - loop.time() < timeout:
        timeout = max(0.0, deadline - loop.time())
        status, reason = 504, "the request deadline passed while the client was reading"
    try:
        async with asyncio.timeout(timeout):
            await send
    except TimeoutError:
        raise ClientStalled(status, reason) from None


def abort_connection(transport: asyncio.WriteTransport) -> None:
    """Drop a connection at once, its unsent bytes with it: the kernel answers with a reset
    (SO_LINGER 0) instead of keeping the socket to deliver them to a reader that never reads."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # (A pseudo-socket of another event loop may refuse the option; the abort still holds.)
        with contextlib.suppress(OSError, AttributeError, NotImplementedError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
