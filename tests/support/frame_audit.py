"""What a frame does, counted: aten operations inside the frame's two functions (A) and (B)
and outside them, operations that must never run inside them (a host sync, a data-dependent
shape, a tensor built from Python data, a cross-device copy), and graph breaks when
torch._dynamo traces them. Used by the tests (CPU) and bench/gpu.py (either device).

Counts are a proxy for kernel launches: on a GPU every operation outside a captured graph is
a launch the host pays for, every one inside is replayed for free.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from server.engine.frame.step import FrameModel, FrameShape

# Operations that wait for the device, have data-dependent shapes or copy host data in.
FORBIDDEN = ("_local_scalar_dense", "nonzero", "masked_select", "unique", "lift_fresh")


def _devices(values: Any) -> set[str]:
    found: set[str] = set()
    for value in values if isinstance(values, (list, tuple)) else [values]:
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            found.add(str(value.device))
        elif isinstance(value, (list, tuple)):
            found |= _devices(value)
    return found


def forbidden_reason(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """Why an operation must not run inside a frame, or None."""
    base = name.split(".")[1] if name.startswith("aten.") else name
    if any(base == bad or base.startswith(bad) for bad in FORBIDDEN):
        return base
    if base in ("index", "index_put", "index_put_") and len(args) > 1:
        indices = args[1]
        if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices or ()):
            return f"{base} with a boolean mask"
    if base in ("copy_", "_to_copy", "to") and len(_devices(args) | _devices(list(kwargs.values()))) > 1:
        return f"{base} across devices"
    if base == "_to_copy" and "device" in kwargs and kwargs["device"] != _first_device(args):
        return "_to_copy across devices"
    return None


def _first_device(args: tuple[Any, ...]) -> torch.device | None:
    for value in args:
        if isinstance(value, torch.Tensor):
            return value.device
    return None


@dataclass
class FrameCounts:
    frames: int = 0
    inside: Counter[str] = field(default_factory=Counter)  # per op, inside (A) and (B)
    outside: Counter[str] = field(default_factory=Counter)
    forbidden: Counter[str] = field(default_factory=Counter)  # reason -> count, inside only

    def per_frame(self, counter: Counter[str]) -> float:
        return sum(counter.values()) / max(self.frames, 1)


class _Counting(TorchDispatchMode):
    def __init__(self, counts: FrameCounts) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.counts = counts
        self.inside = False

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        name = str(func)
        if self.inside:
            self.counts.inside[name] += 1
            reason = forbidden_reason(name, args, kwargs)
            if reason is not None:
                self.counts.forbidden[reason] += 1
        else:
            self.counts.outside[name] += 1
        return func(*args, **kwargs)


@contextmanager
def counting(model: FrameModel) -> Iterator[FrameCounts]:
    """Count the operations of every frame run inside the block (each frame's (A) and (B)
    marked as inside, the rest of the step outside)."""
    counts = FrameCounts()
    mode = _Counting(counts)
    originals = (model.predictor_frame, model.talker_step)

    def marked(function: Callable[[FrameShape], None], ends_frame: bool) -> Callable[[FrameShape], None]:
        def run(shape: FrameShape) -> None:
            mode.inside = True
            try:
                function(shape)
            finally:
                mode.inside = False
            if ends_frame:
                counts.frames += 1

        return run

    model.predictor_frame = marked(originals[0], False)  # type: ignore[method-assign,assignment]
    model.talker_step = marked(originals[1], True)  # type: ignore[method-assign,assignment]
    try:
        with mode:
            yield counts
    finally:
        model.predictor_frame, model.talker_step = originals  # type: ignore[method-assign]


def forbidden_operations(function: Callable[[], Any]) -> dict[str, int]:
    """Operations that must never run inside a captured function, counted over one call of
    `function` (the codec's decode, for one)."""
    counts = FrameCounts()
    mode = _Counting(counts)
    mode.inside = True
    with mode:
        function()
    return dict(counts.forbidden)


def graph_breaks(model: FrameModel, shape: FrameShape) -> dict[str, Any]:
    """torch._dynamo.explain (tracing only, backend "eager") over (B) and (A) at one shape:
    graphs, graph breaks and their reasons."""
    import torch._dynamo

    found: dict[str, Any] = {}
    for name, function in (("predictor", model.predictor_frame), ("talker", model.talker_step)):
        torch._dynamo.reset()
        explained = torch._dynamo.explain(function)(shape)
        found[name] = {
            "graphs": explained.graph_count,
            "breaks": explained.graph_break_count,
            "reasons": [str(reason.reason) for reason in explained.break_reasons],
        }
    torch._dynamo.reset()
    return found
