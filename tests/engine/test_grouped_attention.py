"""The talker's grouped decode attention (server/engine/frame/attention.py) gives what
transformers' SDPA attention gives with K and V repeated to every head, for masked one-position
queries, and hands everything else to transformers unchanged."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from server.engine.frame.attention import grouped_decode_attention


def inputs(rows: int, heads: int, kv_heads: int, length: int, queries: int = 1) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(rows * 100 + length)
    query = torch.randn(rows, heads, queries, 16, generator=generator)
    key = torch.randn(rows, kv_heads, length, 16, generator=generator)
    value = torch.randn(rows, kv_heads, length, 16, generator=generator)
    seen = torch.randint(1, length + 1, (rows, 1), generator=generator)
    mask = (torch.arange(length).unsqueeze(0) < seen)[:, None, None, :]
    return query, key, value, mask


def test_a_masked_decode_step_equals_the_repeated_heads() -> None:
    module = SimpleNamespace(num_key_value_groups=4, is_causal=True)
    for rows, length in ((1, 8), (5, 64), (8, 256)):
        query, key, value, mask = inputs(rows, 8, 2, length)
        grouped, _ = grouped_decode_attention(module, query, key, value, mask, scaling=0.25)
        reference, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=0.25)
        assert grouped.shape == reference.shape == (rows, 1, 8, 16)
        assert torch.allclose(grouped, reference, atol=1e-6, rtol=1e-5)


def test_other_calls_go_to_transformers_unchanged() -> None:
    module = SimpleNamespace(num_key_value_groups=4, is_causal=True)
    query, key, value, _ = inputs(1, 8, 2, 12, queries=12)  # a prefill: causal, no mask
    grouped, _ = grouped_decode_attention(module, query, key, value, None, scaling=0.25)
    reference, _ = sdpa_attention_forward(module, query, key, value, None, scaling=0.25)
    assert torch.equal(grouped, reference)
