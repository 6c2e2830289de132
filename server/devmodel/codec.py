"""The speech tokenizer (12 Hz codec) of the dev checkpoints: real architecture, random weights.

Written to `<checkpoint>/speech_tokenizer/` as `config.json`, `model.safetensors` and
`preprocessor_config.json`, which is what `Qwen3TTSTokenizer.from_pretrained` reads
(`AutoFeatureExtractor` + `AutoModel`). The codec keeps the released rates whatever the size:
24 kHz in and out, 1920 samples per frame (decoder upsampling 8*5*4*3*2*2, encoder hop
8*6*5*4 = 960 then a stride-2 downsample), 16 codebooks of 2048 entries. Only widths and depths
shrink in the tiny size.

Two fixes turn random weights into audible output:
- the decoder's codebooks (`embedding_sum`) and Mimi's encoder codebooks are created as zeros,
  so every code would decode to the same vector (silence); they are filled with random values;
- a randomly initialised decoder is very quiet, so the gain of its last convolution is
  calibrated on random codes to give an RMS near `TARGET_RMS`, rounded to a power of two so
  that tiny floating-point differences between machines cannot change the saved bytes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

import torch
from qwen_tts.core import Qwen3TTSTokenizerV2Config, Qwen3TTSTokenizerV2Model

SAMPLE_RATE = 24_000
SAMPLES_PER_FRAME = 1920
NUM_CODEBOOKS = 16
CODEBOOK_SIZE = 2048
TARGET_RMS = 0.1

CodecSize = Literal["tiny", "full"]

# The released 12 Hz codec (decoder as published; encoder is a Mimi model).
_FULL_DECODER: dict[str, Any] = {
    "latent_dim": 1024,
    "codebook_dim": 512,
    "decoder_dim": 1536,
    "hidden_size": 512,
    "intermediate_size": 1024,
    "head_dim": 64,
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
    "num_hidden_layers": 8,
}
_FULL_ENCODER: dict[str, Any] = {
    "hidden_size": 512,
    "num_filters": 64,
    "num_hidden_layers": 8,
    "num_attention_heads": 8,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "intermediate_size": 2048,
    "codebook_dim": 256,
    "vector_quantization_hidden_dimension": 256,
    "num_quantizers": 32,
    "upsample_groups": 512,
}
_TINY_DECODER: dict[str, Any] = {
    "latent_dim": 32,
    "codebook_dim": 16,
    "decoder_dim": 32,
    "hidden_size": 32,
    "intermediate_size": 64,
    "head_dim": 16,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "num_hidden_layers": 1,
}
_TINY_ENCODER: dict[str, Any] = {
    "hidden_size": 32,
    "num_filters": 4,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "intermediate_size": 64,
    "codebook_dim": 16,
    "vector_quantization_hidden_dimension": 16,
    "num_quantizers": NUM_CODEBOOKS,
    "upsample_groups": 32,
}


def codec_config(size: CodecSize) -> Qwen3TTSTokenizerV2Config:
    decoder = {
        **(_TINY_DECODER if size == "tiny" else _FULL_DECODER),
        "codebook_size": CODEBOOK_SIZE,
        "num_quantizers": NUM_CODEBOOKS,
        "num_semantic_quantizers": 1,
        "semantic_codebook_size": 4096,
        "upsample_rates": [8, 5, 4, 3],
        "upsampling_ratios": [2, 2],
        "sliding_window": 72,
        "max_position_embeddings": 8000,
        "rope_theta": 10000,
        "rms_norm_eps": 1e-5,
        "layer_scale_initial_scale": 0.01,
        "hidden_act": "silu",
    }
    encoder = {
        **(_TINY_ENCODER if size == "tiny" else _FULL_ENCODER),
        "sampling_rate": SAMPLE_RATE,
        "frame_rate": 12.5,
        "audio_channels": 1,
        "upsampling_ratios": [8, 6, 5, 4],
        "codebook_size": CODEBOOK_SIZE,
        "num_semantic_quantizers": 1,
        "sliding_window": 250,
        "hidden_act": "gelu",
        "use_causal_conv": True,
        "pad_mode": "constant",
        "norm_eps": 1e-5,
        "layer_scale_initial_scale": 0.01,
        "rope_theta": 10000.0,
        "max_position_embeddings": 8000,
    }
    return Qwen3TTSTokenizerV2Config(
        encoder_config=encoder,
        decoder_config=decoder,
        encoder_valid_num_quantizers=NUM_CODEBOOKS,
        input_sample_rate=SAMPLE_RATE,
        output_sample_rate=SAMPLE_RATE,
        decode_upsample_rate=SAMPLES_PER_FRAME,
        encode_downsample_rate=SAMPLES_PER_FRAME,
        architectures=["Qwen3TTSTokenizerV2Model"],
    )


def build_codec(size: CodecSize, generator: torch.Generator) -> Qwen3TTSTokenizerV2Model:
    """A codec with random weights (global RNG, seeded by the caller) made audible (see module doc)."""
    codec = Qwen3TTSTokenizerV2Model(codec_config(size)).eval()
    _randomise_codebooks(codec, generator)
    _calibrate_decoder_gain(codec, generator)
    return codec


@torch.no_grad()
def _randomise_codebooks(codec: Qwen3TTSTokenizerV2Model, generator: torch.Generator) -> None:
    for name, tensor in sorted(codec.state_dict(keep_vars=True).items()):
        if name.endswith(("embedding_sum", "embed_sum")):
            tensor.copy_(torch.randn(tensor.shape, generator=generator))


@torch.no_grad()
def _calibrate_decoder_gain(codec: Qwen3TTSTokenizerV2Model, generator: torch.Generator) -> None:
    codes = torch.randint(0, CODEBOOK_SIZE, (1, NUM_CODEBOOKS, 8), generator=generator)
    final_conv = codec.decoder.decoder[-1].conv
    final_conv.weight.mul_(1e-3)  # keep the probe below the decoder's clamp to [-1, 1]
    final_conv.bias.mul_(1e-3)
    rms = float(codec.decoder(codes).pow(2).mean().sqrt())
    gain = 2.0 ** round(math.log2(TARGET_RMS / max(rms, 1e-12)))
    final_conv.weight.mul_(gain)
    final_conv.bias.mul_(gain)


def save_codec(codec: Qwen3TTSTokenizerV2Model, directory: Path, dtype: torch.dtype) -> None:
    """Write the `speech_tokenizer/` folder the package loads."""
    codec.to(dtype).save_pretrained(directory)
    preprocessor = {
        "feature_extractor_type": "EncodecFeatureExtractor",
        "feature_size": 1,
        "sampling_rate": SAMPLE_RATE,
        "padding_side": "right",
        "padding_value": 0.0,
        "return_attention_mask": True,
        "chunk_length_s": None,
        "overlap": None,
    }
    (directory / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n", encoding="utf-8")
