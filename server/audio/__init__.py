"""Audio output layer: formats, encoders and sample-level DSP.

Deliberately free of torch/FastAPI/engine imports so it can be tested and
benchmarked on its own; it only sees mono float32 numpy arrays.
"""

from .dsp import (
    MAX_SPEED,
    MIN_SPEED,
    SAMPLE_RATE,
    change_speed,
    float_to_int16,
    to_pcm16_bytes,
)
from .encoders import AudioEncoder, create_encoder, encode_whole
from .formats import (
    FORMATS,
    SUPPORTED_FORMATS,
    FormatSpec,
    UnknownFormatError,
    get_format,
)

__all__ = [
    "FORMATS",
    "MAX_SPEED",
    "MIN_SPEED",
    "SAMPLE_RATE",
    "SUPPORTED_FORMATS",
    "AudioEncoder",
    "FormatSpec",
    "UnknownFormatError",
    "change_speed",
    "create_encoder",
    "encode_whole",
    "float_to_int16",
    "get_format",
    "to_pcm16_bytes",
]
