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
from typing import Generic, TypeVar

T = TypeVar("T")

# Unanswered messages one connection may hold: a long LLM answer sent as word deltas faster
# than it is spoken is a few thousand small messages.
READ_AHEAD_MESSAGES = 4096
# ...and their bytes, as a multiple of MAX_JSON_BYTES (the largest message).
READ_AHEAD_BODIES = 4


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
