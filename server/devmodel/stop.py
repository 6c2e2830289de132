"""A hand-wired "stop when the text is spoken" circuit inside a random talker.

Random weights almost never emit the end-of-speech code (codec eos, 2150), so every call would run
to `max_new_tokens`. The talker's codec head has no bias to raise, so the circuit is built from
the weights the package already loads; nothing outside the released architecture is added.

Three residual channels of the talker are reserved (RESERVED, the first three):
- BIAS (0): the text projection's output bias writes a constant `K` there at every position
  (every talker input position contains exactly one text-projection output: role tokens, tts
  pad/bos/eos, text, or the pad added to codec frames). With `K = 2 * sqrt(hidden)` this channel
  dominates every RMSNorm, so a channel value `x` normalises to about `x * sqrt(hidden) / K`.
- MARK (1): the text projection writes a marker for "text" tokens: weight 1 for ordinary
  tokens, PROMPT_WEIGHT for `<|im_start|>` (so short prompts start "long", see below), 0 for the
  other special tokens (tts pad/bos/eos, `<|im_end|>`), which fill the prompt's codec prefix
  and every generated frame.
- FRACTION (2): in layer 0, attention head 0 has a zero query, so it attends uniformly over the
  whole causal context; its value reads MARK and its output writes FRACTION. The result is `f`,
  the marker-weighted share of text positions among all positions seen so far. Each generated
  frame adds a position without a marker, so `f` falls as audio is produced, and it falls past
  the threshold later for longer texts.
All other reads of and writes to these channels (attention, MLP, codec and speaker embeddings)
are zeroed, so the random network neither disturbs nor sees them.

The final norm scales BIAS to about 1 and FRACTION to about `f`, and the codec head's eos row
reads them: `logit(eos) = eos_bias + SLOPE * (STOP_FRACTION - f)`; every other code's logit stays
near 0. With the package's default sampling (top-k 50, temperature 0.9) the end becomes likely
once `f` drops below STOP_FRACTION: about `9 + 1.5 * n` frames for `n` text tokens when the whole
text is in the prompt (`non_streaming_mode=True`, the CustomVoice default), about `10 + 2.5 * n`
when the text is streamed in one token per frame (the Base default). `eos_bias` moves the end
earlier (higher) or later (lower); a very negative value disables it.
"""

from __future__ import annotations

import math

import torch
from qwen_tts.core.models import Qwen3TTSForConditionalGeneration

BIAS, MARK, FRACTION = 0, 1, 2
RESERVED = [BIAS, MARK, FRACTION]
DEFAULT_EOS_BIAS = 3.5
SLOPE = 40.0
STOP_FRACTION = 0.45
PROMPT_WEIGHT = 6.0
_MARK_SHARE = 0.1  # MARK and FRACTION magnitudes, as a share of K (small: they barely move the RMS)
_GATE = 8.0  # silu(8 * w) ~= 8 * w, so the text projection's marker stays linear in w
CODEC_EOS_ID = 2150


@torch.no_grad()
def install_stop_circuit(
    model: Qwen3TTSForConditionalGeneration, marker_weights: torch.Tensor, eos_bias: float
) -> None:
    """Wire the circuit into `model.talker`; `marker_weights[token_id]` is each text token's marker."""
    _silence_reserved_channels(model)
    _write_text_projection(model, marker_weights)
    _write_fraction_head(model)
    _write_eos_readout(model, eos_bias)


def _hidden_size(model: Qwen3TTSForConditionalGeneration) -> int:
    return int(model.talker.config.hidden_size)


def _bias_level(model: Qwen3TTSForConditionalGeneration) -> float:
    """K, the constant in BIAS: large enough to dominate every RMSNorm of the talker."""
    return 2.0 * math.sqrt(_hidden_size(model))


def _silence_reserved_channels(model: Qwen3TTSForConditionalGeneration) -> None:
    silence_channels(model, RESERVED)


def silence_channels(model: Qwen3TTSForConditionalGeneration, channels: list[int]) -> None:
    """Nothing in the random network reads or writes these channels of the talker."""
    talker = model.talker
    embeddings: list[torch.nn.Embedding] = [talker.model.codec_embedding, *talker.code_predictor.model.codec_embedding]
    for embedding in embeddings:
        embedding.weight[:, channels] = 0.0
    for layer in talker.model.layers:
        attention, mlp = layer.self_attn, layer.mlp
        for reader in (attention.q_proj, attention.k_proj, attention.v_proj, mlp.gate_proj, mlp.up_proj):
            reader.weight[:, channels] = 0.0
        for writer in (attention.o_proj, mlp.down_proj):
            writer.weight[channels, :] = 0.0
    talker.codec_head.weight[:, channels] = 0.0
    if model.speaker_encoder is not None:  # its x-vector is added to a prompt position
        model.speaker_encoder.fc.weight[channels] = 0.0
        model.speaker_encoder.fc.bias[channels] = 0.0


def _write_text_projection(model: Qwen3TTSForConditionalGeneration, marker_weights: torch.Tensor) -> None:
    """Text-space channel 0 carries each token's marker; the projection maps it to MARK and adds K to BIAS."""
    text_embedding = model.talker.model.text_embedding.weight
    text_embedding[:, 0] = 0.0
    text_embedding[: marker_weights.numel(), 0] = marker_weights.to(text_embedding.dtype)
    projection = model.talker.text_projection
    fc1, fc2 = projection.linear_fc1, projection.linear_fc2
    fc1.weight[0, :] = 0.0
    fc1.weight[0, 0] = _GATE
    fc1.bias[0] = 0.0
    fc2.weight[:, 0] = 0.0
    fc2.weight[RESERVED, :] = 0.0
    fc2.bias[RESERVED] = 0.0
    fc2.bias[BIAS] = _bias_level(model)
    fc2.weight[MARK, 0] = _MARK_SHARE * _bias_level(model) / _GATE


def _write_fraction_head(model: Qwen3TTSForConditionalGeneration) -> None:
    """Layer 0, head 0: uniform attention that averages MARK into FRACTION."""
    attention = model.talker.model.layers[0].self_attn
    normalised_mark = _MARK_SHARE * math.sqrt(_hidden_size(model))  # MARK after the layer's RMSNorm
    attention.q_proj.weight[: attention.head_dim, :] = 0.0  # query 0 -> equal scores -> uniform attention
    attention.v_proj.weight[0, :] = 0.0
    attention.v_proj.weight[0, MARK] = 1.0 / normalised_mark  # value = the position's marker weight
    attention.o_proj.weight[:, 0] = 0.0
    attention.o_proj.weight[FRACTION, 0] = _MARK_SHARE * _bias_level(model)


def _write_eos_readout(model: Qwen3TTSForConditionalGeneration, eos_bias: float) -> None:
    """Final norm brings BIAS to ~1 and FRACTION to ~f; the eos row turns them into the stop logit."""
    hidden = _hidden_size(model)
    norm = model.talker.model.norm.weight
    norm[BIAS] = 1.0 / math.sqrt(hidden)
    norm[MARK] = 0.0
    norm[FRACTION] = 1.0 / (_MARK_SHARE * math.sqrt(hidden))
    head = model.talker.codec_head.weight
    head[CODEC_EOS_ID, BIAS] = eos_bias + SLOPE * STOP_FRACTION
    head[CODEC_EOS_ID, FRACTION] = -SLOPE
