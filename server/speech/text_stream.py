"""A text stream spoken sentence by sentence while it is still being written.

Deltas (an LLM's output, cut anywhere) go through a sentence accumulator; each sentence is
handed to the front door's `speak` as soon as it is certainly complete, in order, by one
voice task, while more deltas arrive. At most SENTENCES_AHEAD complete sentences wait for
the voice; beyond that `feed` waits (and the client's socket pushes back).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from server.text.incremental import SentenceAccumulator

SENTENCES_AHEAD = 8

# Speaks one sentence (its index in the stream); False when it failed and the stream ends.
SpeakSentence = Callable[[str, int], Awaitable[bool]]


class TextStream:
    def __init__(self, speak: SpeakSentence, ahead: int = SENTENCES_AHEAD) -> None:
        self._speak = speak
        self._sentences: asyncio.Queue[str | None] = asyncio.Queue(ahead)
        self._accumulator = SentenceAccumulator()
        self._task: asyncio.Task[bool] = asyncio.create_task(self._voice())
        self.spoken = 0

    @property
    def failed(self) -> bool:
        """True once a sentence failed: the stream has ended, later text is not spoken."""
        task = self._task
        return task.done() and not task.cancelled() and task.exception() is None and not task.result()

    async def feed(self, delta: str) -> None:
        for sentence in self._accumulator.feed(delta):
            await self._push(sentence)

    async def finish(self) -> bool:
        """Speak what is left; True once every sentence was spoken, False after a failure."""
        for sentence in self._accumulator.flush():
            await self._push(sentence)
        await self._push(None)
        return await self._task

    async def cancel(self) -> None:
        """Stop at once (the client left): the sentence being spoken stops in the engine."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task

    async def _push(self, sentence: str | None) -> None:
        """Queue a sentence (None: the end) for the voice, unless the voice has stopped."""
        put = asyncio.create_task(self._sentences.put(sentence))
        done, _ = await asyncio.wait({put, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if put not in done:
            put.cancel()

    async def _voice(self) -> bool:
        while (sentence := await self._sentences.get()) is not None:
            if not await self._speak(sentence, self.spoken):
                return False
            self.spoken += 1
        return True
