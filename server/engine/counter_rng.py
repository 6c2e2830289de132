"""Random numbers without generator state: a uniform number is a hash of where it is used,
(seed, segment, frame, codebook, vocabulary id), so a row's draws depend on nothing else:
not on what shares its batch, its slot or bucket, how many draws ran before, or the device.

A `torch.Generator` per row cannot live inside a captured CUDA graph (every registered
generator advances on every replay, and the row it serves is fixed at capture), and one
shared generator makes a seeded row's draws depend on its company. A counter-based draw is
an ordinary tensor computation instead: the same few integer operations on the CPU and the
GPU, with no state to carry from frame to frame.

The hash is `lowbias32` (Chris Wellons' integer hash search; good avalanche, two multiplies)
applied in a chain over the key's words. Arithmetic stays inside int64 without ever
overflowing: values are kept below 2**32 and a 32-bit multiply is split into two 16-bit
halves, so the result is defined on every backend (signed overflow is not).
"""

from __future__ import annotations

import torch

MASK32 = 0xFFFFFFFF
_MUL_A = 0x7FEB352D
_MUL_B = 0x846CA68B
# Distinct odd constants mixed into each word of the key, so (1, 2) and (2, 1) differ.
_SALTS = (0x9E3779B9, 0x85EBCA6B, 0xC2B2AE35, 0x27D4EB2F, 0x165667B1)


def _mul32(x: torch.Tensor, constant: int) -> torch.Tensor:
    """(x * constant) mod 2**32 for 0 <= x < 2**32, in int64 without overflow."""
    high = ((x >> 16) * constant) & 0xFFFF
    return ((high << 16) + (x & 0xFFFF) * constant) & MASK32


def hash32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 of int64 values below 2**32; the result is below 2**32 too."""
    x = x ^ (x >> 16)
    x = _mul32(x, _MUL_A)
    x = x ^ (x >> 15)
    x = _mul32(x, _MUL_B)
    return x ^ (x >> 16)


def mix(state: torch.Tensor, word: torch.Tensor | int, salt: int) -> torch.Tensor:
    """Fold one more word of a key into a running hash."""
    return hash32(state ^ ((word + salt) & MASK32))


def row_keys(seed: torch.Tensor, segment: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
    """One key per row for one frame, from long [B] tensors (seed below 2**32)."""
    state = hash32((seed + _SALTS[0]) & MASK32)
    state = mix(state, segment, _SALTS[1])
    return mix(state, frame, _SALTS[2])


def uniform(keys: torch.Tensor, codebook: int, ids: torch.Tensor) -> torch.Tensor:
    """Uniform numbers in (0, 1), float32 [B, N], one per row key (long [B]) and vocabulary id
    (long [B, N] or [N]), for one codebook: 24 bits, so never exactly 0 or 1."""
    state = mix(keys, codebook, _SALTS[3]).unsqueeze(1)
    bits = mix(state, ids, _SALTS[4]) >> 8
    return (bits.to(torch.float32) + 0.5) * (1.0 / (1 << 24))


def gumbel(keys: torch.Tensor, codebook: int, ids: torch.Tensor) -> torch.Tensor:
    """Gumbel(0, 1) noise: argmax(logits + noise) draws from softmax(logits) exactly."""
    return -torch.log(-torch.log(uniform(keys, codebook, ids)))
