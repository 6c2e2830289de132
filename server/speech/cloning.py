"""Clone prompts: computing them on the base model from decoded reference audio, and an LRU
cache so a repeated reference (the same recording, transcript and mode) skips extraction.

Prompts hold model tensors; this module only passes them around as opaque values. Every
call that touches them runs on the engine's inference thread through the adapter.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from server.audio.reference import SAMPLE_RATE, ReferenceAudioError, decode_reference
from server.engine.jobs import CloneVoice
from server.engine.scheduler import Engine
from server.errors import invalid_request

CloneMode = Literal["icl", "x_vector"]


def clone_mode(ref_text: str | None) -> CloneMode:
    """With a transcript the model continues the reference in context (ICL); without one it
    can only use the speaker embedding (x-vector)."""
    return "icl" if ref_text else "x_vector"


@dataclass(frozen=True)
class ClonePrompt:
    """A computed prompt and how it was obtained (for logs and the per-request timing)."""

    prompt: Any
    mode: CloneMode
    cache_hit: bool
    prompt_ms: float


class PromptCache:
    """Least-recently-used prompts by key; `capacity` 0 disables caching. Used from the event
    loop only, so it needs no lock."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[str, Any] = OrderedDict()

    @staticmethod
    def key(audio: np.ndarray, ref_text: str | None, mode: CloneMode) -> str:
        digest = hashlib.sha256(np.ascontiguousarray(audio, dtype=np.float32).tobytes())
        # Length-prefixed so no (text, mode) pair can collide with another's concatenation.
        text = (ref_text or "").encode()
        digest.update(f"|{mode}|{len(text)}|".encode() + text)
        return digest.hexdigest()

    def get(self, key: str) -> Any | None:
        if key in self._items:
            self._items.move_to_end(key)
            self.hits += 1
            return self._items[key]
        self.misses += 1
        return None

    def put(self, key: str, prompt: Any) -> None:
        if self.capacity <= 0:
            return
        self._items[key] = prompt
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def clear(self) -> int:
        cleared = len(self._items)
        self._items.clear()
        return cleared

    def stats(self) -> dict[str, int]:
        return {"size": len(self._items), "max": self.capacity, "hits": self.hits, "misses": self.misses}


class CloneService:
    """Decodes reference uploads and turns them into clone prompts on the base model."""

    def __init__(self, engine: Engine, cache: PromptCache, min_seconds: float, max_seconds: float) -> None:
        self.engine = engine
        self.cache = cache
        self.min_seconds = min_seconds
        self.max_seconds = max_seconds

    async def decode(self, data: bytes, param: str) -> np.ndarray:
        """The upload as float32 mono 24 kHz; a 400 naming `param` when it is not usable."""
        try:
            # Decoding and resampling are CPU work: off the event loop.
            return await asyncio.to_thread(decode_reference, data, self.min_seconds, self.max_seconds)
        except ReferenceAudioError as exc:
            raise invalid_request(str(exc), param=param, code="invalid_reference_audio") from exc

    async def compute(self, audio: np.ndarray, ref_text: str | None) -> Any:
        """Extract a prompt on the inference thread, bypassing the cache."""
        reference = CloneVoice(reference=(audio, SAMPLE_RATE), ref_text=ref_text or None)
        return await self.engine.run_with_model("base", lambda backend: backend.clone_prompt(reference))

    async def prompt_for(self, audio: np.ndarray, ref_text: str | None) -> ClonePrompt:
        mode = clone_mode(ref_text)
        key = PromptCache.key(audio, ref_text, mode)
        started = time.perf_counter()
        cached = self.cache.get(key)
        if cached is not None:
            return ClonePrompt(cached, mode, True, (time.perf_counter() - started) * 1000)
        prompt = await self.compute(audio, ref_text)
        self.cache.put(key, prompt)
        return ClonePrompt(prompt, mode, False, (time.perf_counter() - started) * 1000)
