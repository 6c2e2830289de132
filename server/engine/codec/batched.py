"""The streaming codec decode for many streams at once, as a function over static buffers that
a graph can capture per (chunk frames, batch bucket).

Each stream's decoder state lives in one row of static tensors (rows 0..R-1 follow the
batch's rows; row R is a scratch row that padded entries point at):
- the last two frames of quantizer output, `pre_conv`'s left context (kernel 3);
- per transformer layer, the keys and values of the last window-1 frames and the row's frame
  count (its next position), so a chunk of N frames attends to exactly what the package's
  sliding-window cache would hold;
- every causal convolution's left context and every overlapping transposed convolution's last
  input frame (server/engine/codec/convs.py's layers, whose `state` is set per call).

A call decodes N frames for the `bucket` rows named in `index` (gathered, run, scattered
back), reading `codes` and writing `audio`; its shapes depend on (N, bucket) alone and it
reads nothing back to the host. The operations are the package's modules, so a row's audio
equals its whole-file decode up to the rounding a batched kernel may differ in.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from server.engine.codec.convs import StreamingConvStack

# Chunk sizes a call is captured for; any chunk is decoded as a sum of them, largest first.
PIECE_FRAMES = (24, 16, 8, 4, 2, 1)
# Frames of quantizer output `pre_conv` (kernel 3) needs before a chunk.
CODE_CONTEXT_FRAMES = 2


def pieces(frames: int, sizes: tuple[int, ...] = PIECE_FRAMES) -> list[int]:
    """`frames` as a sum of the captured sizes, largest first."""
    found = []
    for size in sizes:
        while frames >= size:
            found.append(size)
            frames -= size
    return found


class _WindowCache:
    """The transformer's cache for one call: each layer's stored keys and values (the last
    window-1 frames of the rows in `index`) with the new ones after them."""

    def __init__(self, codec: BatchedCodec, index: torch.Tensor) -> None:
        self._codec = codec
        self._index = index

    def update(
        self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, cache_kwargs: dict[str, Any] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        codec, index = self._codec, self._index
        keys = torch.cat((codec.keys[layer_idx][index], key), dim=2)
        values = torch.cat((codec.values[layer_idx][index], value), dim=2)
        kept = codec.window - 1
        codec.keys[layer_idx].index_copy_(0, index, keys[:, :, -kept:])
        codec.values[layer_idx].index_copy_(0, index, values[:, :, -kept:])
        return keys, values

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self._codec.window - 1


class BatchedCodec:
    """Per-row streaming decoder state of one loaded model, and the call that decodes."""

    def __init__(self, decoder: Any, rows: int) -> None:
        config = decoder.config
        if set(config.layer_types) != {"sliding_attention"}:
            raise ValueError(f"the codec's transformer layers are {config.layer_types}, not all sliding-window")
        self.decoder = decoder
        self.rows = rows
        self.scratch = rows  # the row padded entries point at
        self.window = int(config.sliding_window)
        parameter = next(decoder.parameters())
        device, dtype = parameter.device, parameter.dtype
        total = rows + 1
        transformer = decoder.pre_transformer
        heads = int(config.num_key_value_heads)
        head_dim = int(getattr(config, "head_dim", config.hidden_size // config.num_attention_heads))
        self.convs = StreamingConvStack(decoder)
        # Every float state of a row in one buffer (each state a view of its columns), so a
        # new stream resets, and a moving one moves, in one operation.
        layers = int(config.num_hidden_layers)
        shapes: list[tuple[int, ...]] = [(heads, self.window - 1, head_dim)] * (2 * layers)
        shapes.append((int(decoder.pre_conv.conv.in_channels), CODE_CONTEXT_FRAMES))
        stateful = self.convs.stateful()
        shapes += [(channels, frames) for _, channels, frames in stateful]
        widths = [math.prod(shape) for shape in shapes]
        self.state = torch.zeros(total, sum(widths), dtype=dtype, device=device)
        views, offset = [], 0
        for shape, width in zip(shapes, widths, strict=True):
            views.append(self.state[:, offset : offset + width].view(total, *shape))
            offset += width
        self.keys = views[:layers]
        self.values = views[layers : 2 * layers]
        self.code_context = views[2 * layers]
        self.conv_states = [
            (layer, view) for (layer, _, _), view in zip(stateful, views[2 * layers + 1 :], strict=True)
        ]
        self.frames = torch.zeros(total, dtype=torch.long, device=device)  # each row's next position
        self._transformer = transformer
        self._cached_positions = torch.arange(-(self.window - 1), 0, device=device)
        self._new_positions = torch.arange(max(PIECE_FRAMES), device=device)
        self.device = device

    # ---- between calls (host) ----------------------------------------------------------

    def reset(self, row: int) -> None:
        """A new stream in `row`: nothing decoded yet (fill_: no blocking copies)."""
        self.state[row].fill_(0)
        self.frames[row].fill_(0)

    def move(self, source: int, target: int) -> None:
        self.state[target] = self.state[source]
        self.frames[target] = self.frames[source]

    # ---- the call --------------------------------------------------------------------

    def decode(self, index: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Audio float32 [B, N * 1920], clamped like the package's decode, for the next N
        frames `codes` (long [B, N, 16]) of the rows `index` (long [B]); their state advances."""
        decoder = self.decoder
        count = codes.shape[1]
        quantized = decoder.quantizer.decode(codes.clamp(min=0).transpose(1, 2))  # [B, C, N]
        full = torch.cat((self.code_context[index], quantized), dim=-1)
        self.code_context.index_copy_(0, index, full[..., -CODE_CONTEXT_FRAMES:])
        embedded = decoder.pre_conv.conv(full)  # kernel 3 over the context: [B, latent, N]
        start = self.frames[index]
        positions = start.unsqueeze(1) + self._new_positions[:count]  # [B, N]
        self.frames.index_copy_(0, index, start + count)
        latent = self._attend(embedded.transpose(1, 2), positions, index).transpose(1, 2)
        for layer, state in self.conv_states:
            layer.state = state[index]
        wav = self.convs(latent)
        for layer, state in self.conv_states:
            state.index_copy_(0, index, layer.state)
            layer.state = None
        return wav[:, 0].clamp(min=-1, max=1).float()

    def _attend(self, hidden: torch.Tensor, positions: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """The codec's transformer over the new frames, each row at its own positions, against
        its last window-1 frames (masked where the row is younger than that)."""
        transformer = self._transformer
        hidden = transformer.input_proj(hidden)
        rotary = transformer.rotary_emb(hidden, positions)
        start = positions[:, :1]
        keys = torch.cat((start + self._cached_positions, positions), dim=1)  # [B, W-1+N]
        query = positions.unsqueeze(2)
        key = keys.unsqueeze(1)
        mask = (key <= query) & (key > query - self.window) & (key >= 0)
        cache = _WindowCache(self, index)
        for layer in transformer.layers[: transformer.config.num_hidden_layers]:
            hidden = layer(
                hidden,
                attention_mask=mask[:, None],
                position_ids=positions,
                past_key_values=cache,
                use_cache=True,
                cache_position=positions[0],
                position_embeddings=rotary,
            )
        out: torch.Tensor = transformer.output_proj(transformer.norm(hidden))
        return out
