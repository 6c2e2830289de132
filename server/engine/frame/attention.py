"""The talker's attention for a decode step, on its grouped-query path.

transformers' SDPA attention repeats K and V to every query head whenever a mask is given
(`use_gqa_in_sdpa` wants no mask), and the frame's talker step must give one: each row sees
its own positions of the slot cache. At 64 rows and a 2,048-key bucket that copy, in every
layer, is most of the step's memory traffic. With one query position per row, the query's
heads can be laid out as [rows, kv_heads, groups, head_dim] instead: each group's heads
become the query positions of their key/value head, every one with the row's mask, and
SDPA reads K and V once, unrepeated. The arithmetic is the same dot products and softmax.

Anything else (the prefill's many positions, the code predictor's unmasked steps) goes to
transformers' own SDPA function unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

NAME = "frame_grouped_sdpa"


def grouped_decode_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature: query [B, H, q, D], key and value
    [B, KV, L, D]; returns [B, q, H, D]."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    groups = int(getattr(module, "num_key_value_groups", 1))
    if query.shape[2] != 1 or attention_mask is None or groups == 1:
        out: tuple[torch.Tensor, None] = sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs
        )
        return out
    rows, heads, _, head_dim = query.shape
    kv_heads = key.shape[1]
    # Head h attends with key/value head h // groups (repeat_kv's order).
    grouped = query.reshape(rows, kv_heads, groups, head_dim)
    mask = attention_mask[:, :, :, : key.shape[-2]]  # [B, 1, 1, L]: the same for every head
    attended = F.scaled_dot_product_attention(grouped, key, value, attn_mask=mask, scale=scaling)
    return attended.reshape(rows, heads, 1, head_dim).transpose(1, 2).contiguous(), None


def use_grouped_decode(talker: Any) -> None:
    """Give the talker's layers the grouped decode attention (registered once)."""
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, grouped_decode_attention)
    for layer in talker.model.layers:
        layer.self_attn.config._attn_implementation_internal = NAME
