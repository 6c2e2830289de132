"""The aligner slot (ALIGNER_MODEL_ID): Qwen3-ForcedAligner, loaded lazily, unloaded when
idle, run on its own thread on the inference device.

The aligner is one non-autoregressive pass per call (no frame loop), so it does not join the
speech model's batches: a single worker thread of its own runs every alignment in turn.
The speech frame loop never waits for it, which is what lets a segment be aligned while
the next one is generated without adding to anyone's time to first audio.

The package (`qwen-asr`, the server's `aligner` extra) is imported only when the slot
loads, so a server without ALIGNER_MODEL_ID never pays for it, and only through
server.engine.slots.asr_package, which undoes what importing it does to floating point.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import importlib.util
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import soxr

from server.engine.device.runtime import runtime_for
from server.engine.errors import EngineError
from server.engine.slots.models import SlotState, SlotStats
from server.text import separate_scripts

log = logging.getLogger("qwen3-tts.aligner")

# The longest audio one call takes (qwen_asr.inference.utils.MAX_FORCE_ALIGN_INPUT_SECONDS):
# the released model's timestamp classes stop there.
MAX_ALIGN_SECONDS = 180.0
ALIGNER_PACKAGE = "qwen_asr"
SPEECH_RATE = 24_000  # what the speech model makes, and what alignments are handed
# What the aligner hears (qwen_asr.inference.utils.SAMPLE_RATE). The server resamples to it
# itself: the package would call librosa.resample, whose first use compiles librosa's numba
# kernels (a second with numba's cache warm, half a minute or more on two cores without it,
# as in a fresh container). soxr at "HQ" is what librosa.resample runs by default: the same
# samples, so the same times.
ALIGNER_RATE = 16_000
HOW_TO_ENABLE = (
    "word timestamps need the forced aligner: set ALIGNER_MODEL_ID (e.g. Qwen/Qwen3-ForcedAligner-0.6B) "
    "with the server's `aligner` extra installed"
)


@dataclass(frozen=True)
class AlignedSpan:
    """One unit the aligner placed (a word, or one CJK character), in seconds of the audio it heard."""

    text: str
    start: float
    end: float


class AlignerUnavailable(EngineError, RuntimeError):
    """ALIGNER_MODEL_ID is set but the package that runs it is not installed."""


def check_aligner_support(model_id: str) -> None:
    """Stop startup, before anything loads, when the aligner is asked for and cannot run."""
    if model_id and not aligner_package_installed():
        raise AlignerUnavailable(
            f"ALIGNER_MODEL_ID={model_id} needs the qwen-asr package, which is not installed: install the "
            "`aligner` extra (uv sync --extra aligner; in the image: --build-arg EXTRAS=aligner)"
        )


class AlignmentError(EngineError, RuntimeError):
    """An alignment could not be made; the message says why (it goes to the client)."""


class ForcedAligner(Protocol):
    """What the slot needs of a loaded aligner (qwen_asr's Qwen3ForcedAligner)."""

    def align(self, audio: Any, text: Any, language: Any) -> list[Any]: ...


AlignerLoader = Callable[[str, str], ForcedAligner]


def aligner_package_installed() -> bool:
    return importlib.util.find_spec(ALIGNER_PACKAGE) is not None


@functools.cache
def _word_processor() -> Any:
    from server.engine.slots.asr_package import Qwen3ForceAlignProcessor

    return Qwen3ForceAlignProcessor()


def aligner_words(text: str, language: str) -> list[str]:
    """The units the aligner times in `text`, split exactly as its own processor splits them
    (words at spaces with punctuation dropped, one unit per CJK character, nagisa for
    Japanese, soynlp for Korean), once a change of script has been made a word boundary
    (`separate_scripts`): the language alone would glue "안녕하세요。Привет" into one word."""
    words, _prompt = _word_processor().encode_timestamp(separate_scripts(text), language)
    return list(words)


def load_forced_aligner(model_id: str, device: str) -> ForcedAligner:
    """Qwen3-ForcedAligner through its package, in bf16 on a GPU and fp32 on the CPU."""
    import torch

    from server.engine.slots.asr_package import Qwen3ForcedAligner

    runtime = runtime_for(device)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    aligner: ForcedAligner = Qwen3ForcedAligner.from_pretrained(
        model_id, dtype=dtype, device_map=runtime.load_map(device)
    )
    package_aligner: Any = aligner
    runtime.place(package_aligner.model)
    package_aligner.device = package_aligner.model.device
    # One call at load: the first forward pass (a second on the CPU, kernel selection on a
    # GPU) is paid here, not by a request.
    aligner.align(audio=(np.zeros(ALIGNER_RATE, dtype=np.float32), ALIGNER_RATE), text="warm up", language="English")
    return aligner


def at_aligner_rate(pcm: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 audio at ALIGNER_RATE, resampled as the package would (soxr, HQ)."""
    if sample_rate == ALIGNER_RATE:
        return pcm
    return np.asarray(soxr.resample(pcm, sample_rate, ALIGNER_RATE, quality="HQ"), dtype=np.float32)


class AlignerSlot:
    """Holds at most one loaded aligner and runs every alignment on one thread of its own."""

    def __init__(
        self, model_id: str, device: str, idle_timeout: float, loader: AlignerLoader = load_forced_aligner
    ) -> None:
        self.model_id = model_id
        self.device = device
        self.idle_timeout = idle_timeout
        self._loader = loader
        self._aligner: ForcedAligner | None = None
        self.state: SlotState = "unloaded"
        self.last_error: str | None = None
        self.last_used = time.monotonic()
        self.in_flight = 0  # alignments submitted and not finished (event loop only)
        self.aligned = 0  # alignments made since start
        self.failed = 0
        self.stats = SlotStats()
        self._lock = threading.Lock()  # state changes against /health readers
        self._thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="aligner")
        self._idle_task: asyncio.Task[None] | None = None
        self.idle_sweeps = 0

    async def start(self) -> None:
        if self.idle_timeout > 0:
            self._idle_task = asyncio.create_task(self._unload_when_idle(), name="aligner-idle-unload")

    async def stop(self) -> None:
        if self._idle_task is not None:
            self._idle_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._idle_task
        await asyncio.get_running_loop().run_in_executor(self._thread, self._unload, "shutdown")
        self._thread.shutdown(wait=False, cancel_futures=True)

    async def align(self, pcm: np.ndarray, sample_rate: int, text: str, language: str) -> list[AlignedSpan]:
        """The spans of `text` in `pcm` (mono float32), in seconds from its start. Raises
        AlignmentError when it cannot be done (audio too long, the model failed to load or run)."""
        seconds = pcm.shape[0] / sample_rate
        if seconds > MAX_ALIGN_SECONDS:
            raise AlignmentError(
                f"the segment is {seconds:.0f} s long; the aligner takes at most {MAX_ALIGN_SECONDS:g} s"
            )
        self.in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._thread, self._align, pcm, sample_rate, text, language
            )
        finally:
            self.in_flight -= 1
            self.last_used = time.monotonic()

    def _align(self, pcm: np.ndarray, sample_rate: int, text: str, language: str) -> list[AlignedSpan]:
        with runtime_for(self.device).bound():  # this thread runs the aligner's device work
            return self._align_bound(pcm, sample_rate, text, language)

    def _align_bound(self, pcm: np.ndarray, sample_rate: int, text: str, language: str) -> list[AlignedSpan]:
        text = separate_scripts(text)  # as aligner_words splits it
        words = aligner_words(text, language)
        if not words:  # nothing to time (punctuation only): no call, no load
            return []
        aligner = self._ensure_loaded()
        try:
            heard = at_aligner_rate(pcm, sample_rate)
            (result,) = aligner.align(audio=(heard, ALIGNER_RATE), text=text, language=language)
        except Exception as exc:
            self.failed += 1
            raise AlignmentError(f"the aligner failed: {type(exc).__name__}: {exc}") from exc
        spans = [AlignedSpan(str(item.text), float(item.start_time), float(item.end_time)) for item in result]
        if [span.text for span in spans] != words:  # every word once, in order, or none
            self.failed += 1
            raise AlignmentError(f"the aligner returned {len(spans)} spans for {len(words)} words")
        self.aligned += 1
        return spans

    def _ensure_loaded(self) -> ForcedAligner:
        if self._aligner is not None:
            return self._aligner
        with self._lock:
            self.state = "loading"
        log.info("loading aligner", extra={"model_id": self.model_id, "device": self.device})
        started = time.perf_counter()
        try:
            aligner = self._loader(self.model_id, self.device)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            with self._lock:
                self.state = "unloaded"
                self.last_error = reason
            self.failed += 1
            log.error("aligner load failed", extra={"model_id": self.model_id, "error": reason})
            raise AlignmentError(f"the aligner {self.model_id!r} could not be loaded: {reason}") from exc
        seconds = time.perf_counter() - started
        with self._lock:
            self._aligner = aligner
            self.state = "loaded"
            self.last_error = None
            self.stats.load_count += 1
            self.stats.last_load_seconds = seconds
        log.info("aligner loaded", extra={"model_id": self.model_id, "load_ms": round(seconds * 1000, 1)})
        return aligner

    def _unload(self, reason: str) -> None:
        if self._aligner is None:
            return
        with self._lock:
            self.state = "unloading"
            self._aligner = None
        import gc

        gc.collect()
        runtime_for(self.device).empty_cache()
        with self._lock:
            self.state = "unloaded"
            self.stats.unload_count += 1
        log.info("aligner unloaded", extra={"model_id": self.model_id, "reason": reason})

    def _is_idle(self) -> bool:
        return (
            self._aligner is not None and self.in_flight == 0 and time.monotonic() - self.last_used >= self.idle_timeout
        )

    async def _unload_when_idle(self) -> None:
        period = min(1.0, self.idle_timeout / 4)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            self.idle_sweeps += 1
            if self._is_idle():
                # Checked again on the thread: an alignment may have been queued meanwhile.
                await loop.run_in_executor(self._thread, self._unload_if_idle)

    def _unload_if_idle(self) -> None:
        if self._is_idle():
            self._unload(f"idle for {self.idle_timeout:g} s")

    def describe(self) -> dict[str, Any]:
        return {
            "enabled": True,
            "model_id": self.model_id,
            "status": self.state,
            "loaded": self._aligner is not None,
            "device": self.device,
            "in_flight": self.in_flight,
            "idle_seconds": round(time.monotonic() - self.last_used, 1),
            "aligned": self.aligned,
            "failed": self.failed,
            "load_count": self.stats.load_count,
            "unload_count": self.stats.unload_count,
            "last_load_seconds": self.stats.last_load_seconds,
            "last_error": self.last_error,
            "max_audio_seconds": MAX_ALIGN_SECONDS,
        }


def aligner_off() -> dict[str, Any]:
    """/health's aligner section when ALIGNER_MODEL_ID is empty."""
    return {"enabled": False, "how_to_enable": HOW_TO_ENABLE}
