"""How a request and a connection end, the same on every front door.

- `ClientGone`: the client closed its connection; nothing more can be sent to it.
- `outcome_of`: what an exception that ended a request means: the status and error its log
  line records, and the error to tell the client when the failure was the server's (none
  when the client left or stopped reading).
- `run_connection`: a connection's reader task and its server task run together; when either
  ends, both are ended, and what a client's leaving raises is not an error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from server.errors import APIError, to_api_error
from server.speech.sending import CLIENT_GONE, ClientStalled

log = logging.getLogger("qwen3-tts")

CLIENT_DISCONNECTED = "client disconnected"


class ClientGone(Exception):
    """The client went away (or stopped reading); nothing more can be sent to it. Its text
    says why, when the front door knows."""


@dataclass(frozen=True)
class Outcome:
    """How a request ended: `status` and `error` for its log line; `api_error` is what the
    client is told, None when the client is not there to hear it (it left or stalled)."""

    status: int
    error: str
    api_error: APIError | None = None


def outcome_of(exc: Exception | asyncio.CancelledError | ClientStalled) -> Outcome:
    """The outcome of a request that `exc` ended."""
    if isinstance(exc, ClientStalled):
        return Outcome(exc.status, exc.reason)
    if isinstance(exc, (ClientGone, asyncio.CancelledError)):
        return Outcome(CLIENT_GONE, str(exc) or CLIENT_DISCONNECTED)
    if isinstance(exc, APIError):
        return Outcome(exc.status, exc.message, exc)
    api_error = to_api_error(exc)
    return Outcome(api_error.status, str(exc) or type(exc).__name__, api_error)


OnStalled = Callable[[ClientStalled], None]


def log_stalled(connection_id: str, endpoint: str) -> OnStalled:
    """Logs a connection the send guard gave up on (its client stopped reading)."""

    def stalled(exc: ClientStalled) -> None:
        log.info(
            "websocket client stalled", extra={"request_id": connection_id, "endpoint": endpoint, "error": exc.reason}
        )

    return stalled


async def run_connection(
    reader: Awaitable[None],
    server: Awaitable[None],
    on_stalled: OnStalled | None = None,
    quiet: tuple[type[BaseException], ...] = (),
) -> None:
    """Run a connection's reader and server (coroutines or tasks) until either ends, then end
    both. Their ends by cancellation, ClientGone and the `quiet` exceptions are the client
    leaving; ClientStalled (the send guard gave up on a client that stopped reading, and
    dropped it) goes to `on_stalled`. Anything else is raised."""
    leaving: tuple[type[BaseException], ...] = (asyncio.CancelledError, ClientGone, *quiet)
    tasks = [asyncio.ensure_future(reader), asyncio.ensure_future(server)]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except leaving:
                pass
            except ClientStalled as stalled:
                if on_stalled is not None:
                    on_stalled(stalled)
