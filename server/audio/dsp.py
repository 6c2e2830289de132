"""Sample-level helpers: input normalisation, int16 conversion, speed change.

Everything here works on mono float32 numpy arrays at the model's rate
(:data:`SAMPLE_RATE`), which is how Qwen3-TTS hands audio over.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

SAMPLE_RATE: Final = 24000
"""Native output rate of the Qwen3-TTS speech tokenizer (Hz)."""

MIN_SPEED: Final = 0.25
MAX_SPEED: Final = 4.0
"""Speed range accepted by the OpenAI ``/v1/audio/speech`` ``speed`` field."""

# Asymmetric scale: -1.0 maps to -32768 and anything >= 32767/32768 saturates at
# 32767, i.e. the full int16 range is used and nothing ever wraps around.
_INT16_SCALE: Final = 32768.0


def as_mono_float32(pcm: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Return ``pcm`` as a 1-D float32 array, without copying when it already is.

    Accepts shape ``(n,)`` or a single-channel 2-D array (``(n, 1)`` / ``(1, n)``).
    Anything with more channels is rejected: silently flattening stereo would
    interleave channels into garbled double-length audio.
    """
    arr = np.asarray(pcm, dtype=np.float32)
    if arr.ndim == 1:
        return arr
    if arr.ndim == 2 and 1 in arr.shape:
        return arr.reshape(-1)
    raise ValueError(f"expected mono audio (1-D array), got shape {arr.shape}")


def clip_float(pcm: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Return a finite float32 copy of ``pcm`` clipped to [-1, 1].

    Lossy encoders are fed floats; clipping here keeps overshooting model output
    from turning into encoder-dependent overflow, and NaN/inf (a model glitch)
    into silence/full-scale instead of undefined encoder behaviour.
    """
    out = np.nan_to_num(as_mono_float32(pcm), nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(out, -1.0, 1.0, out=out)


def float_to_int16(pcm: npt.ArrayLike) -> npt.NDArray[np.int16]:
    """Convert float audio in [-1, 1] to int16, clipping (never wrapping) overshoot.

    ``+2.0 -> 32767`` and ``-2.0 -> -32768``; a plain ``astype(int16)`` of
    out-of-range values would wrap to the opposite sign and produce loud clicks.
    """
    scaled = np.nan_to_num(as_mono_float32(pcm), nan=0.0, posinf=1.0, neginf=-1.0)
    scaled = scaled * _INT16_SCALE  # new array: never mutates the caller's buffer
    np.rint(scaled, out=scaled)
    np.clip(scaled, -32768.0, 32767.0, out=scaled)
    return scaled.astype(np.int16)


def to_pcm16_bytes(pcm: npt.ArrayLike) -> bytes:
    """Raw signed 16-bit little-endian bytes of ``pcm`` (the ``pcm`` wire format)."""
    return float_to_int16(pcm).astype("<i2", copy=False).tobytes()


def change_speed(pcm: npt.NDArray[np.float32], speed: float, sample_rate: int = SAMPLE_RATE) -> npt.NDArray[np.float32]:
    """Time-stretch ``pcm`` by ``speed`` (2.0 = twice as fast) keeping the pitch.

    Uses Rubber Band through pedalboard, in-process. ``speed == 1.0`` returns the
    input object itself so the common path costs nothing.

    The stretcher has internal state and look-ahead, so apply this to a whole
    utterance (or long segments); stretching many tiny streaming chunks
    independently produces audible seams at chunk boundaries.

    Raises:
        ValueError: ``speed`` outside [0.25, 4.0] (or not finite).
    """
    speed = float(speed)
    if not MIN_SPEED <= speed <= MAX_SPEED:  # also rejects NaN
        raise ValueError(f"speed must be between {MIN_SPEED} and {MAX_SPEED}, got {speed}")
    if speed == 1.0:
        return pcm
    mono = as_mono_float32(pcm)
    if mono.size == 0:
        return mono.copy()

    # Imported lazily: pedalboard loads a sizeable native library and most
    # requests never change speed.
    from pedalboard import time_stretch

    stretched = time_stretch(mono[np.newaxis, :], float(sample_rate), stretch_factor=speed)
    return np.ascontiguousarray(stretched[0], dtype=np.float32)
