"""The messages a WebSocket client sent that are not answered yet.

The reader takes every message off the connection as soon as it arrives and never waits
for the inbox: uvicorn reads a connection only while its app keeps receiving, and the
client's pings and pongs arrive behind its data frames, so a reader that paused for a busy
session would also pause the keepalive, and uvicorn would close a client that reads
everything with 1011 (keepalive ping timeout). What the inbox may hold is bounded instead,
by the number of messages and their bytes; a client that sends more than that ahead of
its answers is closed with 1008 (policy violation) and a reason saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

from starlette.websockets import WebSocket, WebSocketDisconnect

from server.errors import APIError, invalid_request

T = TypeVar("T")

log = logging.getLogger("qwen3-tts")

# Unanswered messages one connection may hold: a long LLM answer sent as word deltas faster
# than it is spoken is a few thousand small messages.
READ_AHEAD_MESSAGES = 4096
# ...and their bytes, as a multiple of MAX_JSON_BYTES (the largest message).
READ_AHEAD_BODIES = 4
# Close codes (RFC 6455): what the client sent breaks a limit (read-ahead); a message is
# larger than MAX_JSON_BYTES (uvicorn refuses such a frame from its header with the same
# code; the reader checks again for servers in front that allow more).
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009


class ReadAheadExceeded(Exception):
    """The client sent more than the inbox may hold ahead of its answers."""


class Inbox(Generic[T]):
    def __init__(self, max_messages: int, max_bytes: int) -> None:
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._queue: asyncio.Queue[tuple[T, int]] = asyncio.Queue()  # bounded by `put`'s check
        self.bytes = 0

    def __len__(self) -> int:
        return self._queue.qsize()

    def put(self, item: T, size: int) -> None:
        """Queue a message of `size` bytes; raises ReadAheadExceeded past either bound."""
        if len(self) + 1 > self.max_messages or self.bytes + size > self.max_bytes:
            raise ReadAheadExceeded(
                f"more than {self.max_messages} messages or {self.max_bytes} bytes sent ahead of their answers"
            )
        self.bytes += size
        self._queue.put_nowait((item, size))

    async def get(self) -> T:
        item, size = await self._queue.get()
        self.bytes -= size
        return item


async def close_websocket(websocket: WebSocket, code: int, reason: str, request_id: str, endpoint: str) -> None:
    """Close with `code` and `reason` (logged), whether or not the client is still there."""
    log.info("websocket closed", extra={"request_id": request_id, "endpoint": endpoint, "code": code, "error": reason})
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await websocket.close(code, reason)


async def read_ahead(
    websocket: WebSocket,
    inbox: Inbox[T | APIError],
    parse: Callable[[str], T],
    max_message_bytes: int,
    request_id: str,
    endpoint: str,
) -> None:
    """Every message of `websocket` into `inbox` as it arrives, parsed (a message that does
    not parse is queued as its error, answered in turn); returns when the client goes, or
    after closing the connection for a message over `max_message_bytes` or a read-ahead past
    the inbox's bounds. Shared by every WebSocket front door."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        raw = message.get("text")
        size = len(raw.encode()) if raw is not None else len(message.get("bytes") or b"")
        if size > max_message_bytes:
            reason = f"a message may hold {max_message_bytes} bytes (MAX_JSON_BYTES)"
            await close_websocket(websocket, MESSAGE_TOO_BIG, reason, request_id, endpoint)
            return
        item: T | APIError
        if raw is None:
            item = invalid_request("send JSON messages as text frames, not binary")
        else:
            try:
                item = parse(raw)
            except APIError as exc:
                item = exc
        try:
            inbox.put(item, size)
        except ReadAheadExceeded as exc:
            await close_websocket(websocket, POLICY_VIOLATION, str(exc), request_id, endpoint)
            return
