"""Sends a WebSocket request's word timestamps as `words` events, from a task of its own, as
soon as each segment's words are aligned and its audio has been sent: a text stream's last
sentence gets its words while the client's LLM is still writing the next one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from server.speech.ending import ClientGone
from server.speech.timestamps import WordTimer
from server.websocket.speaker import Speaker


class WordsSender:
    def __init__(self, speaker: Speaker, timer: WordTimer) -> None:
        self.speaker = speaker
        self.timer = timer
        self._task = asyncio.create_task(self._send_all(), name="websocket-words")

    async def _send_all(self) -> None:
        async for words in self.timer.stream():
            await self.speaker.send_event({"event": "words", **words.as_json()})

    def add_done_callback(self, callback: Callable[[asyncio.Task[Any]], object]) -> None:
        """`callback` when the sender ends (by an exception: the client gone or stalled)."""
        self._task.add_done_callback(callback)

    async def finish(self) -> None:
        """Send every word still to come (the request's audio is all sent), then return."""
        self.timer.close()
        await self._task

    async def cancel(self) -> None:
        """Stop now: the request ended without its words (it failed, or the client left)."""
        self.timer.cancel()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ClientGone):
            await self._task
