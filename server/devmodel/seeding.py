"""What every dev checkpoint builder shares: seeded initial weights and the size's dtype."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def seeded_weights(seed: int) -> Iterator[None]:
    """Module constructors draw their initial weights from torch's global CPU generator: seed it
    for the build, and give the caller's generator state back afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


def checkpoint_dtype(size: str) -> torch.dtype:
    """fp32 for the tiny checkpoints (exact CPU comparisons), bf16 for the full-size ones, as released."""
    return torch.float32 if size == "tiny" else torch.bfloat16
