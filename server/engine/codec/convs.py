"""The codec decoder's upsampling and convolution stack, run incrementally: each causal
convolution keeps the last inputs it needs (its left context) between calls, each transposed
convolution its last input frame, so a chunk of N latent frames costs exactly N frames of
work and the output equals running the stack over the whole sequence.

The modules are the package's own (walked in its order; every non-convolution layer is
called as it is). Only how a convolution is computed may differ: on the CPU, a convolution
with very few channels (the dev checkpoints' last layers have two) runs an order of
magnitude faster as one matrix product over its taps than through the default kernel; the
arithmetic is the same up to float rounding.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# Convolutions whose in x out channels are at most this use the matrix-product form on the CPU.
SMALL_CONV_CHANNELS = 256


def _fast_conv(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """A stride-1, ungrouped, unpadded conv1d of a [B, C_in, L] input as one matrix product
    over its taps (im2col), [B, C_out, L - span]."""
    weight = conv.weight  # [C_out, C_in, K]
    c_out, c_in, taps = weight.shape
    dilation = int(conv.dilation[0])
    length = x.shape[-1] - (taps - 1) * dilation
    x = x.contiguous()
    batch_stride, channel_stride, time_stride = x.stride()
    columns = x.as_strided(
        (x.shape[0], c_in, taps, length), (batch_stride, channel_stride, dilation * time_stride, time_stride)
    ).reshape(x.shape[0], c_in * taps, length)
    out = weight.reshape(c_out, c_in * taps) @ columns
    if conv.bias is not None:
        out = out + conv.bias.unsqueeze(1)
    return out


class _CausalConv:
    """A CausalConvNet (left padding only, stride 1) with its left context kept between calls."""

    def __init__(self, module: Any) -> None:
        conv: nn.Conv1d = module.conv
        if int(conv.stride[0]) != 1 or int(module.stride) != 1:
            raise ValueError("streaming decode supports stride-1 causal convolutions only")
        self.conv = conv
        self.context = int(module.padding)  # (kernel - 1) * dilation
        self.fast = (
            conv.weight.device.type == "cpu"
            and conv.groups == 1
            and conv.in_channels * conv.out_channels <= SMALL_CONV_CHANNELS
        )
        self.state: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.context:
            if self.state is None:
                self.state = x.new_zeros(x.shape[0], x.shape[1], self.context)
            full = torch.cat([self.state, x], dim=-1)
            self.state = full[..., -self.context :]
        else:
            full = x
        return _fast_conv(self.conv, full) if self.fast else self.conv(full)


class _CausalTransposedConv:
    """A CausalTransConvNet: kernel = stride (no overlap) needs no state; kernel = 2 x stride
    overlaps one input frame, which is kept."""

    def __init__(self, module: Any) -> None:
        conv: nn.ConvTranspose1d = module.conv
        self.conv = conv
        self.stride = int(conv.stride[0])
        kernel = int(conv.kernel_size[0])
        if kernel not in (self.stride, 2 * self.stride) or int(module.right_pad) != kernel - self.stride:
            raise ValueError("streaming decode supports transposed convolutions of kernel = stride or 2 x stride")
        self.overlap = kernel != self.stride
        self.state: torch.Tensor | None = None  # the last input frame

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.overlap:
            plain: torch.Tensor = self.conv(x)
            return plain
        if self.state is None:
            self.state = x.new_zeros(x.shape[0], x.shape[1], 1)
        full = torch.cat([self.state, x], dim=-1)
        self.state = x[..., -1:]
        out: torch.Tensor = self.conv(full)
        # Output frame m depends on inputs m-1 and m: drop the previous input's own frame, and
        # the trailing half-frame that needs the next (not yet known) input.
        return out[..., self.stride : (x.shape[-1] + 1) * self.stride].contiguous()


class _ConvNeXt:
    def __init__(self, module: Any) -> None:
        self.module = module
        self.dwconv = _CausalConv(module.dwconv)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        m = self.module
        hidden = self.dwconv(x).permute(0, 2, 1)
        hidden = m.pwconv2(m.act(m.pwconv1(m.norm(hidden))))
        out: torch.Tensor = x + (m.gamma * hidden).permute(0, 2, 1)
        return out


class _ResidualUnit:
    def __init__(self, module: Any) -> None:
        self.module = module
        self.conv1 = _CausalConv(module.conv1)
        self.conv2 = _CausalConv(module.conv2)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        m = self.module
        return self.conv2(m.act2(self.conv1(m.act1(x)))) + x


def _streaming(module: Any) -> Any:
    """The streaming form of one layer of the stack (the pointwise SnakeBeta runs as it is)."""
    from qwen_tts.core.tokenizer_12hz import modeling_qwen3_tts_tokenizer_v2 as codec

    if isinstance(module, codec.Qwen3TTSTokenizerV2CausalConvNet):
        return _CausalConv(module)
    if isinstance(module, codec.Qwen3TTSTokenizerV2CausalTransConvNet):
        return _CausalTransposedConv(module)
    if isinstance(module, codec.Qwen3TTSTokenizerV2ConvNeXtBlock):
        return _ConvNeXt(module)
    if isinstance(module, codec.Qwen3TTSTokenizerV2DecoderDecoderResidualUnit):
        return _ResidualUnit(module)
    if isinstance(module, codec.Qwen3TTSTokenizerV2DecoderDecoderBlock):
        return _Sequence([_streaming(layer) for layer in module.block])
    if isinstance(module, codec.SnakeBeta):
        return module
    raise ValueError(f"streaming decode does not know the codec layer {type(module).__name__}")


class _Sequence:
    def __init__(self, layers: list[Any]) -> None:
        self.layers = layers

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class StreamingConvStack:
    """The decoder's `upsample` and `decoder` stacks with per-stream state."""

    def __init__(self, decoder: Any) -> None:
        layers = [_streaming(block) for blocks in decoder.upsample for block in blocks]
        layers += [_streaming(block) for block in decoder.decoder]
        self._stack = _Sequence(layers)

    def __call__(self, latent: torch.Tensor) -> torch.Tensor:
        """Audio [B, 1, N * 1920] (not clamped) for the next N latent frames [B, latent_dim, N]."""
        out: torch.Tensor = self._stack(latent)
        return out

    def stateful(self) -> list[tuple[Any, int, int]]:
        """Every layer that keeps state between calls, with its state's channels and frames:
        (layer, channels, frames). A batched decoder keeps these states per row and sets
        `layer.state` before each call."""
        found: list[tuple[Any, int, int]] = []

        def walk(layer: Any) -> None:
            if isinstance(layer, _Sequence):
                for inner in layer.layers:
                    walk(inner)
            elif isinstance(layer, _ConvNeXt):
                walk(layer.dwconv)
            elif isinstance(layer, _ResidualUnit):
                walk(layer.conv1)
                walk(layer.conv2)
            elif isinstance(layer, _CausalConv) and layer.context:
                found.append((layer, int(layer.conv.in_channels), layer.context))
            elif isinstance(layer, _CausalTransposedConv) and layer.overlap:
                found.append((layer, int(layer.conv.in_channels), 1))

        walk(self._stack)
        return found
