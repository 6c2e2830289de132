"""Streaming sample-rate conversion for the WebSocket `sample_rate` option."""

from __future__ import annotations

import numpy as np
import pytest

from server.audio.resample import ALLOWED_SAMPLE_RATES, StreamResampler, UnsupportedSampleRateError


def tone(seconds: float, hz: float, rate: int = 24_000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def run(resampler: StreamResampler, pcm: np.ndarray, chunk: int) -> np.ndarray:
    parts = [resampler.process(pcm[i : i + chunk]) for i in range(0, pcm.shape[0], chunk)]
    return np.concatenate([*parts, resampler.finish()])


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_chunked_output_equals_one_pass_and_keeps_the_pitch(rate: int) -> None:
    pcm = tone(1.0, 440.0)
    whole = run(StreamResampler(rate), pcm, pcm.shape[0])
    chunked = run(StreamResampler(rate), pcm, 1000)  # uneven pieces, as the engine sends them
    assert whole.dtype == np.float32
    assert abs(whole.shape[0] - rate) <= 1
    np.testing.assert_allclose(chunked, whole, atol=1e-6)
    spectrum = np.abs(np.fft.rfft(whole))
    peak_hz = np.argmax(spectrum) * rate / whole.shape[0]
    assert abs(peak_hz - 440.0) < 2.0


def test_the_model_rate_passes_through_untouched() -> None:
    pcm = tone(0.1, 300.0)
    resampler = StreamResampler(24_000)
    assert resampler.process(pcm) is pcm
    assert resampler.finish().shape == (0,)


@pytest.mark.parametrize("rate", [0, 1000, 24_001, 96_000])
def test_other_rates_are_refused(rate: int) -> None:
    with pytest.raises(UnsupportedSampleRateError, match="sample_rate must be one of"):
        StreamResampler(rate)
    assert rate not in ALLOWED_SAMPLE_RATES


@pytest.mark.parametrize("rate", [8000, 16_000, 22_050, 44_100, 48_000])
def test_silence_stays_exact_zeros_of_its_length_whatever_the_chunks(rate: int) -> None:
    """A pause (a run of exact zeros) comes out as exact zeros, round(seconds x rate) of them,
    at its place; a short gap inside speech is resampled as speech; any chunking agrees."""
    noise = np.random.default_rng(1).standard_normal(60_000).astype(np.float32) * 0.3
    gap, short = np.zeros(16_800, np.float32), np.zeros(100, np.float32)
    pcm = np.concatenate([noise[:24_000], gap, noise[24_000:48_000], short, noise[48_000:], np.zeros(2400, np.float32)])
    whole = StreamResampler(rate)
    expected = np.concatenate([whole.process(pcm), whole.finish()])
    assert expected.shape[0] == round(pcm.shape[0] * rate / 24_000)
    start = round(24_000 * rate / 24_000)
    assert not expected[start : start + round(0.7 * rate)].any()
    assert expected[start - 1] != 0 and expected[start + round(0.7 * rate)] != 0
    assert not expected[-round(0.1 * rate) :].any()
    chunks = np.random.default_rng(rate)
    resampler, out, at = StreamResampler(rate), [], 0
    while at < pcm.shape[0]:
        size = int(chunks.integers(1, 3000))
        out.append(resampler.process(pcm[at : at + size]))
        at += size
    out.append(resampler.finish())
    np.testing.assert_array_equal(np.concatenate(out), expected)
