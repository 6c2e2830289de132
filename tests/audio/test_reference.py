"""Decoding uploaded reference recordings: containers, channels, rates, durations, garbage."""

from __future__ import annotations

import numpy as np
import pytest

from server.audio.reference import ReferenceAudioError, decode_reference
from tests.support.reference import encode_mp3, encode_soundfile, tone


def decode(data: bytes) -> np.ndarray:
    return decode_reference(data, min_seconds=1.0, max_seconds=10.0)


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg"])
def test_soundfile_containers_decode_to_24k_mono(fmt: str) -> None:
    audio = decode(encode_soundfile(tone(2.0), 24_000, fmt))
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.shape[0] - 48_000) < 100


def test_mp3_decodes_through_ffmpeg() -> None:
    audio = decode(encode_mp3(tone(2.0, 44_100), 44_100))
    assert audio.dtype == np.float32 and audio.ndim == 1
    # The encoder pads a little at each end.
    assert 1.95 < audio.shape[0] / 24_000 < 2.15
    assert float(np.sqrt(np.mean(audio**2))) > 0.1


def test_stereo_is_mixed_down() -> None:
    stereo = tone(2.0, channels=2)
    stereo[:, 1] = -stereo[:, 1] * 0.5  # the mix of the two channels is a quarter of the left
    audio = decode(encode_soundfile(stereo, 24_000, "wav"))
    assert audio.ndim == 1
    assert np.allclose(audio, stereo[:, 0] * 0.25, atol=1e-4)


def test_stereo_mp3_is_mixed_down() -> None:
    audio = decode(encode_mp3(tone(2.0, 48_000, channels=2), 48_000))
    assert audio.ndim == 1


@pytest.mark.parametrize("rate", [8_000, 16_000, 22_050, 44_100, 48_000])
def test_any_rate_is_resampled_to_24k(rate: int) -> None:
    audio = decode(encode_soundfile(tone(2.0, rate), rate, "wav"))
    assert abs(audio.shape[0] - 48_000) <= 2
    # The 220 Hz tone survives resampling: the spectrum peaks there.
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * 24_000 / audio.shape[0] - 220) < 2


@pytest.mark.parametrize("seconds, phrase", [(0.5, "at least 1 s"), (12.0, "at most 10 s")])
def test_duration_outside_the_limits_is_refused(seconds: float, phrase: str) -> None:
    with pytest.raises(ReferenceAudioError, match=phrase):
        decode(encode_soundfile(tone(seconds), 24_000, "wav"))


@pytest.mark.parametrize(
    "data",
    [b"", b"not audio at all, just text" * 100, b"RIFF\x00\x00\x00\x00WAVEfmt garbage", bytes(range(256)) * 64],
)
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(ReferenceAudioError):
        decode(data)


def test_truncated_mp3_is_refused_or_decodes_what_is_there() -> None:
    data = encode_mp3(tone(3.0), 24_000)
    try:
        audio = decode(data[: len(data) // 2])
    except ReferenceAudioError:
        return
    assert 1.0 <= audio.shape[0] / 24_000 < 2.0
