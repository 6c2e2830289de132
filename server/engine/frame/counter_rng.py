"""Random numbers without generator state: a uniform number is a hash of where it is used,
(seed, segment, frame, codebook, vocabulary id), so a row's draws depend on nothing else:
not on what shares its batch, its slot or bucket, how many draws ran before, or the device.

A `torch.Generator` per row cannot live inside a captured CUDA graph (every registered
generator advances on every replay, and the row it serves is fixed at capture), and one
shared generator makes a seeded row's draws depend on its company. A counter-based draw is
an ordinary computation instead, with no state to carry from frame to frame.

It comes in two halves, so a frame spends few operations on it:
- on the host, per frame, one key per (row, codebook) from (seed, segment, frame, codebook):
  a chain of splitmix64 finalisers in numpy's wrapping uint64 arithmetic, cut to 31 bits.
  The keys travel to the device with the frame's other staged inputs, in one copy.
- on the device, per draw, a uniform number per vocabulary id from (key XOR id): a
  multiply, xorshift, multiply modulo 2**31, its top 24 bits kept. Products of a 31-bit value and a 32-bit constant stay
  below 2**63, so int64 never overflows and every backend computes the same bits.
"""

from __future__ import annotations

import numpy as np
import torch

MASK31 = (1 << 31) - 1
_MUL_A = 0x7FEB352D
_MUL_B = 0x846CA68B
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_SPLIT_1 = np.uint64(0xBF58476D1CE4E5B9)
_SPLIT_2 = np.uint64(0x94D049BB133111EB)


def _splitmix(x: np.ndarray) -> np.ndarray:
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _SPLIT_1
    z = (z ^ (z >> np.uint64(27))) * _SPLIT_2
    out: np.ndarray = z ^ (z >> np.uint64(31))
    return out


def keys(seed: np.ndarray, segment: np.ndarray, frame: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """31-bit keys, int64, for broadcastable arrays of seeds, segments, frames and codebooks."""
    with np.errstate(over="ignore"):
        state = _splitmix(np.asarray(seed, dtype=np.uint64))
        for word in (segment, frame, codebook):
            state = _splitmix(state ^ np.asarray(word, dtype=np.uint64))
    return (state >> np.uint64(33)).astype(np.int64)


def frame_keys(seed: list[int], segment: list[int], frame: list[int], groups: int) -> np.ndarray:
    """The keys of one frame for each row, int64 [rows, groups]: column 0 for the next frame's
    codebook 0 (drawn at the end of this frame, by the talker), column c for codebook c of
    this frame (drawn by the code predictor)."""
    this = np.asarray(frame, dtype=np.int64)[:, None]
    frames = np.concatenate([this + 1, np.repeat(this, groups - 1, axis=1)], axis=1)
    column = np.arange(groups)[None, :]
    return keys(np.asarray(seed)[:, None], np.asarray(segment)[:, None], frames, column)


def uniform(key: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Uniform numbers in (0, 1), float32 [B, N], one per row key (long [B]) and vocabulary id
    (long [B, N]): 24 bits, never exactly 0 or 1."""
    x = key.unsqueeze(1) ^ ids
    x = (x * _MUL_A) & MASK31
    x = x ^ (x >> 15)
    x = (x * _MUL_B) & MASK31
    # The top bits of a product depend on every bit below them: keep the top 24 (made odd).
    return ((x >> 7) | 1).to(torch.float32) * (1.0 / (1 << 24))


def gumbel(key: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Gumbel(0, 1) noise: argmax(logits + noise) draws from softmax(logits) exactly."""
    return -torch.log(-torch.log(uniform(key, ids)))
