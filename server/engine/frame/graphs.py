"""CUDA graphs of the frame: (B) the code predictor's frame once per batch bucket, (A) the
talker's step once per (batch bucket, length bucket), captured when a model loads (after its
warm-up), sharing one memory pool, released when it unloads.

A frame then costs two replays instead of thousands of kernel launches. Both functions work
only on static buffers (server/engine/frame/device_batch.py, the caches), so a replay sees what the
host staged before it. Graphs are captured with every vocabulary id as a candidate, so the
sampler's shapes do not depend on the batch's settings. A capture that fails is logged with
its reason and shown in /health; that bucket runs eagerly, as every frame does on the CPU.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from server.engine.device.runtime import Capturer, runtime_for
from server.engine.frame.step import FrameModel, FrameShape

log = logging.getLogger("qwen3-tts.engine")


def capture_plan(model: FrameModel) -> list[tuple[str, int, int]]:
    """Every graph a loaded model needs: ("predictor", bucket, 0) and ("talker", bucket,
    length) for each batch bucket and length bucket the scheduler can produce."""
    plan: list[tuple[str, int, int]] = []
    for bucket in model.batch_buckets:
        plan.append(("predictor", bucket, 0))
        plan.extend(("talker", bucket, length) for length in model.length_buckets)
    return plan


@dataclass
class GraphStatus:
    """What /health shows about a model's graphs."""

    enabled: bool
    captured: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # "talker 8x1024": reason
    capture_seconds: float = 0.0
    pool_mib: float = 0.0
    codec_captured: int = 0  # the codec's decode per (chunk frames, batch bucket)

    def describe(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "captured": self.captured,
            "failed": dict(self.failed),
            "capture_seconds": round(self.capture_seconds, 2),
            "pool_mib": round(self.pool_mib, 1),
            "codec_captured": self.codec_captured,
        }


class FrameGraphs:
    """The captured frame of one loaded model, and the runner that replays it. `capture_with`
    turns a named function into its replay (the device runtime's capturer by default; tests
    may pass one that returns the function itself, which re-runs it over the buffers as a
    replay would)."""

    def __init__(self, model: FrameModel, capture_with: Capturer | None = None) -> None:
        self.model = model
        self._capture_with = capture_with
        self.status = GraphStatus(enabled=True)
        self._replays: dict[tuple[str, int, int], Callable[[], None]] = {}

    def capture(self) -> None:
        """Capture every graph of the plan (inference thread, at load, no sequence running)."""
        runtime = runtime_for(self.model.device)
        started = time.perf_counter()
        before = runtime.reserved_bytes()
        capture_with = self._capture_with or runtime.capturer()
        self._capture_with = capture_with
        self.model.state.inputs.zero_()  # every row inert: capture runs leave the state as it is
        for stage, bucket, length in capture_plan(self.model):
            name = f"{stage} {bucket}" + (f"x{length}" if length else "")
            try:
                self._replays[(stage, bucket, length)] = capture_with(name, self._frame_part(stage, bucket, length))
            except Exception as exc:  # that slot runs eagerly; the reason is logged and shown
                self.status.failed[name] = f"{type(exc).__name__}: {exc}"
                log.warning("CUDA graph capture failed; it runs eagerly", extra={"graph": name, "reason": str(exc)})
        runtime.synchronize()
        self.status.pool_mib = (runtime.reserved_bytes() - before) / 2**20
        self.status.captured = len(self._replays)
        self.status.capture_seconds = time.perf_counter() - started
        log.info("CUDA graphs captured", extra=self.status.describe())

    def _frame_part(self, stage: str, bucket: int, length: int) -> Callable[[], None]:
        model = self.model
        shape = FrameShape(bucket, length, model.vocab, model.predictor_vocab)  # every id, top-p on
        if stage == "predictor":
            return lambda: model.predictor_frame(shape)
        return lambda: model.talker_step(shape)

    def run(self, shape: FrameShape) -> None:
        """One frame: replay (B) and (A), or run them eagerly where a capture failed (with
        every id a candidate and top-p on, as captured)."""
        for key in (("predictor", shape.bucket, 0), ("talker", shape.bucket, shape.length)):
            replay = self._replays.get(key) or self._frame_part(*key)
            replay()

    def release(self) -> None:
        self._replays.clear()
        if self._capture_with is not None:
            self._capture_with.release()
        self._capture_with = None
