"""Model slots: one per kind of model served (custom_voice for preset speakers, base for
cloning, voice_design for voices described in words when configured). A slot loads its
model lazily on first use, remembers the last load error, and unloads after an idle
timeout. Loading and unloading run on the inference thread only; the event loop reads the
slot's state for /health and updates `in_flight`."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from server.engine.errors import ModelLoadError
from server.engine.jobs import SlotName
from server.engine.slots.qwen import QwenBackend

log = logging.getLogger("qwen3-tts.engine")

SlotState = Literal["unloaded", "loading", "loaded", "unloading"]
Loader = Callable[[str], tuple[QwenBackend, float]]


@dataclass
class SlotStats:
    load_count: int = 0
    unload_count: int = 0
    last_load_seconds: float | None = None


class ModelSlot:
    """Holds at most one loaded model of one kind."""

    def __init__(self, name: SlotName, model_id: str, device: str, loader: Loader) -> None:
        self.name: SlotName = name
        self.model_id = model_id
        self.device = device
        self._loader = loader
        self._backend: QwenBackend | None = None
        self.state: SlotState = "unloaded"
        self.last_error: str | None = None
        self.last_used = time.monotonic()
        self.in_flight = 0  # jobs admitted for this slot and not yet finished (event loop only)
        self.stats = SlotStats()
        self._lock = threading.Lock()  # guards state changes against readers on other threads
        self.on_load: Callable[[ModelSlot, float], None] | None = None
        self.on_unload: Callable[[ModelSlot], None] | None = None

    @property
    def backend(self) -> QwenBackend | None:
        return self._backend

    def touch(self) -> None:
        """Record use now; called per frame while generating, so a long job never idles out."""
        self.last_used = time.monotonic()

    def ensure_loaded(self) -> QwenBackend:
        """Return the loaded model, loading it first if needed (inference thread only)."""
        if self._backend is not None:
            return self._backend
        with self._lock:
            self.state = "loading"
        log.info("loading model", extra={"slot": self.name, "model_id": self.model_id, "device": self.device})
        try:
            backend, seconds = self._loader(self.model_id)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            with self._lock:
                self.state = "unloaded"
                self.last_error = reason
            log.error("model load failed", extra={"slot": self.name, "model_id": self.model_id, "error": reason})
            raise ModelLoadError(self.name, self.model_id, reason) from exc
        if backend.kind != self.name:
            backend.release()
            reason = f"it is a {backend.kind!r} model, this slot serves {self.name!r} models"
            with self._lock:
                self.state = "unloaded"
                self.last_error = reason
            raise ModelLoadError(self.name, self.model_id, reason)
        if self.on_load is not None:  # counted before the slot reads as loaded
            self.on_load(self, seconds)
        with self._lock:
            self._backend = backend
            self.state = "loaded"
            self.last_error = None
            self.stats.load_count += 1
            self.stats.last_load_seconds = seconds
        self.touch()
        log.info(
            "model loaded",
            extra={"slot": self.name, "model_id": self.model_id, "load_ms": round(seconds * 1000, 1)},
        )
        return backend

    def is_idle(self, idle_timeout: float, now: float | None = None) -> bool:
        if idle_timeout <= 0 or self._backend is None or self.in_flight > 0:
            return False
        now = time.monotonic() if now is None else now
        return now - self.last_used >= idle_timeout

    def unload(self, reason: str) -> bool:
        """Release the model (inference thread only). Returns whether anything was unloaded."""
        backend = self._backend
        if backend is None:
            return False
        with self._lock:
            self.state = "unloading"
        backend.release()
        # Counted before the slot reads as unloaded, so an observer never sees one without the other.
        if self.on_unload is not None:
            self.on_unload(self)
        with self._lock:
            self._backend = None
            self.state = "unloaded"
            self.stats.unload_count += 1
        log.info("model unloaded", extra={"slot": self.name, "model_id": self.model_id, "reason": reason})
        return True

    def describe(self) -> dict[str, Any]:
        backend = self._backend
        return {
            "model_id": self.model_id,
            "status": self.state,
            "loaded": backend is not None,
            "device": self.device,
            "kind": backend.kind if backend else None,
            "speakers": list(backend.speakers) if backend else None,
            "honours_instructions": backend.honours_instruct if backend else None,
            # Captured frames (CUDA_GRAPHS): how many, failures and their reasons, pool memory.
            "cuda_graphs": backend.graph_status.describe() if backend else None,
            "in_flight": self.in_flight,
            "idle_seconds": round(time.monotonic() - self.last_used, 1),
            "load_count": self.stats.load_count,
            "unload_count": self.stats.unload_count,
            "last_load_seconds": self.stats.last_load_seconds,
            "last_error": self.last_error,
        }
