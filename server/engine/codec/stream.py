"""Streaming decode of the 12 Hz codec: frames in as they are generated, audio out, and the
concatenated audio equal to decoding the whole code sequence at once.

The codec's decoder is causal with no lookahead: its convolutions pad on the left only, its
transposed convolutions are trimmed on the right, and its transformer attends to a sliding
window of past frames. So a decoder that keeps the right state reproduces the whole decode:
- codes -> embeddings -> `pre_conv` (kernel 3): the last 2 frames of codes are fed again as
  left context;
- the transformer: its own sliding-window key/value cache (transformers' DynamicCache built
  from the codec's config keeps the last window-1 positions), fed only the new frames;
- the upsampling and convolution stack: every causal convolution keeps its own left context
  (server/engine/codec/convs.py), so each frame goes through it once. Its receptive field is
  about 9.4 frames (summed over its layers), which is why frames whose audio is not wanted
  (a clone's reference) only need their last `CONV_CONTEXT_FRAMES` run through it.
A stateless re-decode of a fixed window cannot be exact: through its layers the transformer
reaches back hundreds of frames.
"""

from __future__ import annotations

from typing import Any

import torch

from server.engine.codec.convs import StreamingConvStack

# Latent frames that cover the convolution stack's receptive field.
CONV_CONTEXT_FRAMES = 10
# Frames of codes re-run through `pre_conv` (kernel 3).
CODE_CONTEXT_FRAMES = 2


class StreamingDecoder:
    """One stream's decoder state (inference thread only). `decoder` is the package's
    Qwen3TTSTokenizerV2Decoder."""

    def __init__(self, decoder: Any) -> None:
        self._decoder = decoder
        self._codes: torch.Tensor | None = None  # [1, 16, <=2] the last codes fed
        self._convs = StreamingConvStack(decoder)
        from transformers import DynamicCache  # imported with the model package, not at startup

        self._cache = DynamicCache(config=decoder.config)
        self._window = int(decoder.config.sliding_window)
        if set(decoder.config.layer_types) != {"sliding_attention"}:
            raise ValueError(f"the codec's transformer layers are {decoder.config.layer_types}, not all sliding-window")
        self.frames = 0

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Audio for the next frames `codes` (long [N, 16]): float [N * 1920], clamped to [-1, 1]
        like the package's decode, on the model's device."""
        wav = self._convs(self._advance(codes))
        return wav[0, 0].clamp(min=-1, max=1)

    def skip(self, codes: torch.Tensor) -> None:
        """Feed frames whose audio is not wanted (a cloned voice's reference in ICL mode): the
        transformer sees them all, the convolution stack only the last few it needs as context."""
        self._convs(self._advance(codes)[..., -CONV_CONTEXT_FRAMES:])

    def _advance(self, codes: torch.Tensor) -> torch.Tensor:
        """Run new frames through the codes and transformer stages; returns their latent frames
        [1, latent_dim, N] and keeps the state."""
        decoder = self._decoder
        new = codes.clamp(min=0).transpose(0, 1).unsqueeze(0)  # [1, 16, N]
        count = new.shape[-1]
        window = new if self._codes is None else torch.cat([self._codes, new], dim=-1)
        embedded = decoder.pre_conv(decoder.quantizer.decode(window))[..., -count:]
        positions = torch.arange(self.frames, self.frames + count, device=new.device)
        hidden = decoder.pre_transformer(
            inputs_embeds=embedded.transpose(1, 2),
            attention_mask={"sliding_attention": self._mask(positions)},
            past_key_values=self._cache,
            use_cache=True,
            cache_position=positions,
            position_ids=positions.unsqueeze(0),
        ).last_hidden_state.permute(0, 2, 1)
        self._codes = window[..., -CODE_CONTEXT_FRAMES:]
        self.frames += count
        latent: torch.Tensor = hidden
        return latent

    def _mask(self, positions: torch.Tensor) -> torch.Tensor:
        """The sliding-window causal mask over the cached keys (the last window-1 positions) and
        the new ones. Given explicitly, it spares transformers building it with vmap each call."""
        cached = min(self.frames, self._window - 1)
        keys = torch.arange(self.frames - cached, self.frames + positions.shape[0], device=positions.device)
        query = positions.unsqueeze(1)
        mask = (keys.unsqueeze(0) <= query) & (keys.unsqueeze(0) > query - self._window)
        return mask[None, None]
