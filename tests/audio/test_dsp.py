"""Speed change keeps pitch; int16 conversion clips instead of wrapping."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from server.audio import SAMPLE_RATE, change_speed, float_to_int16, to_pcm16_bytes
from server.audio.dsp import as_mono_float32


def tone(seconds: float, freq: float = 440.0) -> npt.NDArray[np.float32]:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_frequency(pcm: npt.NDArray[np.float32]) -> float:
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(pcm.size)))
    return float(np.argmax(spectrum) * SAMPLE_RATE / pcm.size)


@pytest.mark.parametrize(("speed", "ratio"), [(2.0, 0.5), (0.5, 2.0), (4.0, 0.25), (0.25, 4.0)])
def test_speed_scales_duration(speed: float, ratio: float) -> None:
    pcm = tone(1.0)
    out = change_speed(pcm, speed)
    assert out.dtype == np.float32 and out.ndim == 1
    assert out.size == pytest.approx(pcm.size * ratio, rel=0.05)


@pytest.mark.parametrize("speed", [1.5, 0.75])
def test_speed_preserves_pitch(speed: float) -> None:
    out = change_speed(tone(2.0), speed)
    assert dominant_frequency(out) == pytest.approx(440.0, rel=0.02)
    assert np.sqrt(np.mean(out**2)) > 0.1  # not silenced along the way


def test_speed_one_is_a_no_op() -> None:
    pcm = tone(0.5)
    assert change_speed(pcm, 1.0) is pcm
    assert change_speed(pcm, 1) is pcm


@pytest.mark.parametrize("speed", [0.0, 0.2, 4.01, 10.0, -1.0, math.nan, math.inf])
def test_speed_out_of_range_raises(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        change_speed(tone(0.1), speed)


def test_speed_on_empty_audio() -> None:
    assert change_speed(np.zeros(0, dtype=np.float32), 2.0).size == 0


def test_float_to_int16_clips_instead_of_wrapping() -> None:
    pcm = np.array([2.0, -2.0, 1.0, -1.0, 0.5, -0.5, 0.0, 1e9, -1e9], dtype=np.float32)
    expected = [32767, -32768, 32767, -32768, 16384, -16384, 0, 32767, -32768]
    np.testing.assert_array_equal(float_to_int16(pcm), expected)
    assert float_to_int16(pcm).dtype == np.int16


def test_float_to_int16_sanitises_non_finite_and_keeps_input() -> None:
    pcm = np.array([np.nan, np.inf, -np.inf, 0.25], dtype=np.float32)
    before = pcm.copy()
    np.testing.assert_array_equal(float_to_int16(pcm), [0, 32767, -32768, 8192])
    np.testing.assert_array_equal(pcm, before)  # caller's buffer untouched


def test_pcm16_bytes_are_little_endian() -> None:
    assert to_pcm16_bytes(np.array([0.5, -2.0], dtype=np.float32)) == b"\x00\x40\x00\x80"


def test_mono_shapes() -> None:
    column = np.zeros((10, 1), dtype=np.float32)
    assert as_mono_float32(column).shape == (10,)
    assert as_mono_float32([0.0, 1.0]).dtype == np.float32
    with pytest.raises(ValueError, match="mono"):
        as_mono_float32(np.zeros((10, 2), dtype=np.float32))
