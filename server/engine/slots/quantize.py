"""QUANTIZE: weight-only int8 or fp8 for the talker and its code predictor, through torchao.

Only the linear layers of the talker (its transformer, the codec head, the code predictor
and its heads) are quantized: they hold nearly all the weights and run every frame.
Embeddings, norms, the speaker encoder and the codec stay in the checkpoint's precision
(the codec turns codes into audio, and its convolutions are not linear layers anyway).
Weight-only means activations keep their dtype: a layer dequantizes its weight on the fly
(int8 per output channel, fp8 e4m3 per row), so memory falls by about half against bf16
and results stay close.

fp8 needs a GPU whose tensor cores have fp8 (compute capability 8.9: Ada, Hopper and newer);
elsewhere QUANTIZE=fp8 stops startup with a message saying so.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import torch

from server.engine.errors import EngineError

log = logging.getLogger("qwen3-tts.engine")

QuantizeMode = Literal["none", "int8", "fp8"]
FP8_MIN_CAPABILITY = (8, 9)


class QuantizeUnsupported(EngineError, RuntimeError):
    """QUANTIZE asks for what this machine or installation cannot do; the message says why."""


def check_quantize_support(mode: QuantizeMode, device: str) -> None:
    """Raise QuantizeUnsupported before anything loads when `mode` cannot run on `device`."""
    if mode == "none":
        return
    try:
        import torchao  # noqa: F401
    except ImportError as exc:
        raise QuantizeUnsupported(
            f"QUANTIZE={mode} needs torchao, which is not installed: install the `quantize` extra "
            "(uv sync --extra quantize; in the image: --build-arg EXTRAS=quantize)"
        ) from exc
    if mode != "fp8":
        return
    if not device.startswith("cuda") or not torch.cuda.is_available():
        raise QuantizeUnsupported(
            f"QUANTIZE=fp8 needs a CUDA GPU with fp8 support (compute capability 8.9 or newer); DEVICE is {device}. "
            "Use QUANTIZE=int8 on this machine"
        )
    index = torch.device(device).index or 0
    capability = torch.cuda.get_device_capability(index)
    if capability < FP8_MIN_CAPABILITY:
        raise QuantizeUnsupported(
            f"QUANTIZE=fp8 needs compute capability 8.9 or newer (Ada, Hopper and later); "
            f"{torch.cuda.get_device_name(index)} has {capability[0]}.{capability[1]}. Use QUANTIZE=int8"
        )


def _config(mode: QuantizeMode) -> Any:
    from torchao.quantization import Float8WeightOnlyConfig, Int8WeightOnlyConfig

    return Int8WeightOnlyConfig() if mode == "int8" else Float8WeightOnlyConfig()


def linear_weight_bytes(module: torch.nn.Module) -> int:
    """Bytes the weights of `module`'s linear layers take, quantized or not."""
    total = 0
    for layer in module.modules():
        if isinstance(layer, torch.nn.Linear):
            total += _tensor_bytes(layer.weight)
    return total


def _tensor_bytes(tensor: torch.Tensor) -> int:
    # torchao's tensor subclasses keep their data in inner tensors (qdata and scale).
    flatten = getattr(tensor, "__tensor_flatten__", None)
    if flatten is not None and type(tensor) not in (torch.nn.Parameter, torch.Tensor):
        names, _ = flatten()
        return sum(_tensor_bytes(getattr(tensor, name)) for name in names)
    return tensor.numel() * tensor.element_size()


def quantize_talker(model: Any, mode: QuantizeMode) -> None:
    """Quantize the talker's linear layers (code predictor included) in place; `model` is the
    package's Qwen3TTSModel. No-op for "none"."""
    if mode == "none":
        return
    from torchao.quantization import quantize_

    talker = model.model.talker
    before = linear_weight_bytes(talker)
    quantize_(talker, _config(mode), filter_fn=lambda module, _fqn: isinstance(module, torch.nn.Linear))
    log.info(
        "talker quantized",
        extra={
            "quantize": mode,
            "linear_weight_mb_before": round(before / 1e6, 1),
            "linear_weight_mb": round(linear_weight_bytes(talker) / 1e6, 1),
        },
    )
