"""The talker's key/value memory for continuous batching: one slot per active sequence, each
written at its own position, so rows of different lengths share one decode step.

transformers' StaticCache keeps one write position for every row, and its DynamicCache
cannot merge a newcomer into a running batch, hence this small cache. Per layer, keys and
values live in one tensor `[slots, kv_heads, max_length, head_dim]` allocated when the model
loads: memory is reserved up front and bounded by MAX_BATCH_SIZE x MAX_SEQUENCE_LENGTH.

A newcomer is prefilled on its own through the package's code path (a fresh DynamicCache),
then its keys and values are copied into a free slot. A decode step `bind`s the rows it runs
and their positions; the attention layers call `update`, which writes each row's new key and
value at that row's position and returns the rows' keys and values up to the longest, and the
step masks each row past its own length. Active sequences are kept in slots 0..n-1 (a leaving
sequence's slot is filled by moving the last one), so the usual full batch reads a view.
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
        self._rows = torch.zeros(0, dtype=torch.long, device=device)
        self._positions = torch.zeros(0, dtype=torch.long, device=device)
        self._prefix = 0  # > 0 when the bound rows are exactly slots 0..prefix-1
        self._length = 0

    @property
    def bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))

    def bind(self, rows: list[int], positions: torch.Tensor, length: int) -> None:
        """Set the rows (slots) and write positions of the next forward; `positions` is long [B]
        and `length` one past the largest of them (known on the host: no device sync)."""
        self._rows = torch.tensor(rows, dtype=torch.long, device=positions.device)
        self._positions = positions
        self._prefix = len(rows) if rows == list(range(len(rows))) else 0
        self._length = length

    # The one method the attention layers call.
    def update(
        self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, cache_kwargs: dict[str, Any] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        keys[self._rows, :, self._positions, :] = key[:, :, 0, :]
        values[self._rows, :, self._positions, :] = value[:, :, 0, :]
        if self._prefix:
            return keys[: self._prefix, :, : self._length], values[: self._prefix, :, : self._length]
        return (
            keys.index_select(0, self._rows)[:, :, : self._length],
            values.index_select(0, self._rows)[:, :, : self._length],
        )

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self._length

    def store_prefill(self, slot: int, prefill: Any) -> None:
        """Copy a single-row DynamicCache (the newcomer's prefill) into `slot` at positions 0..L-1."""
        for layer, (keys, values) in enumerate(zip(self.keys, self.values, strict=True)):
            cached = prefill.layers[layer]
            length = cached.keys.shape[-2]
            keys[slot, :, :length].copy_(cached.keys[0])
            values[slot, :, :length].copy_(cached.values[0])

    def move(self, source: int, target: int, length: int) -> None:
        """Move a sequence's first `length` positions from one slot to another."""
        for keys, values in zip(self.keys, self.values, strict=True):
            keys[target, :, :length].copy_(keys[source, :, :length])
            values[target, :, :length].copy_(values[source, :, :length])
