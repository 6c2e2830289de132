"""The talker's key/value memory for continuous batching: one slot per active sequence, each
written at its own position, so rows of different lengths share one decode step.

transformers' StaticCache keeps one write position for every row, and its DynamicCache
cannot merge a newcomer into a running batch, hence this small cache. Per layer, keys and
values live in one tensor `[slots, kv_heads, max_length, head_dim]` allocated when the model
loads: memory is reserved up front and bounded by MAX_BATCH_SIZE x MAX_SEQUENCE_LENGTH.

A newcomer is prefilled on its own through the package's code path (a fresh DynamicCache),
then its keys and values are copied into a free slot. A decode step `bind`s its bucket (slots
0..bucket-1: active sequences are kept in slots 0..n-1, a leaving sequence's slot filled by
moving the last one), their positions (a device tensor) and a length bucket; the attention
layers call `update`, which writes each row's new key and value at that row's position (long
indices, never a boolean mask) and returns a view of the bucket's keys and values up to the
length bucket, and the step masks each row past its own position. Every shape depends on the
buckets alone, so the step can be captured and replayed.
"""

from __future__ import annotations

from typing import Any

import torch


class SlotKVCache:
    def __init__(
        self,
        layers: int,
        slots: int,
        kv_heads: int,
        max_length: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        shape = (slots, kv_heads, max_length, head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.slots = slots
        self.max_length = max_length
        self._rows = torch.arange(slots, device=device)
        self._positions = torch.zeros(0, dtype=torch.long, device=device)
        self._bucket = 0
        self._length = 0

    @property
    def bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))

    def bind(self, bucket: int, positions: torch.Tensor, length: int) -> None:
        """Set the next forward's rows (slots 0..bucket-1) and write positions (long [bucket],
        on the device); the attention reads keys 0..length-1 (a length bucket past every
        running row's position)."""
        self._bucket = bucket
        self._positions = positions
        self._length = length

    # The one method the attention layers call.
    def update(
        self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, cache_kwargs: dict[str, Any] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        rows = self._rows[: self._bucket]
        keys[rows, :, self._positions, :] = key[:, :, 0, :]
        values[rows, :, self._positions, :] = value[:, :, 0, :]
        return keys[: self._bucket, :, : self._length], values[: self._bucket, :, : self._length]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self._length

    def store_prefill(self, slot: int, prefill: Any, row: int = 0, length: int | None = None) -> None:
        """Copy row `row` of a DynamicCache (a newcomer's prefill) into `slot` at positions
        0..length-1 (the whole cache's length by default)."""
        for layer, (keys, values) in enumerate(zip(self.keys, self.values, strict=True)):
            cached = prefill.layers[layer]
            size = cached.keys.shape[-2] if length is None else length
            keys[slot, :, :size].copy_(cached.keys[row, :, :size])
            values[slot, :, :size].copy_(cached.values[row, :, :size])

    def move(self, source: int, target: int, length: int) -> None:
        """Move a sequence's first `length` positions from one slot to another."""
        for keys, values in zip(self.keys, self.values, strict=True):
            keys[target, :, :length].copy_(keys[source, :, :length])
            values[target, :, :length].copy_(values[source, :, :length])


class PredictorKVCache:
    """The code predictor's keys and values for one frame: every row sits at the same
    frame-local positions 0..16, so one static buffer per layer `[rows, kv_heads, 17,
    head_dim]` holds them, written at fixed offsets by the unrolled steps and never reset
    (each frame overwrites what it reads). transformers' DynamicCache grows by `torch.cat`,
    which a captured graph cannot replay."""

    def __init__(
        self,
        layers: int,
        rows: int,
        kv_heads: int,
        length: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        shape = (rows, kv_heads, length, head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self._bucket = 0
        self._start = 0

    def bind(self, bucket: int, start: int) -> None:
        """The next forward's rows (0..bucket-1) and its first position (a constant of the
        unrolled step)."""
        self._bucket = bucket
        self._start = start

    def update(
        self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, cache_kwargs: dict[str, Any] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        end = self._start + key.shape[2]
        keys = self.keys[layer_idx][: self._bucket]
        values = self.values[layer_idx][: self._bucket]
        keys[:, :, self._start : end].copy_(key)
        values[:, :, self._start : end].copy_(value)
        return keys[:, :, :end], values[:, :, :end]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self._start
