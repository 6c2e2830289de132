"""Sample-rate conversion of streamed model audio (24 kHz) to the rate a client asks for.

soxr's streaming resampler keeps its filter state between chunks, so audio that arrives in
pieces of any size (a sentence today, a few codec frames later) comes out exactly as if the
whole utterance had been resampled at once: no clicks at chunk seams, which a per-chunk
`resample_poly` would put there.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
import soxr

from .dsp import SAMPLE_RATE

# Telephony, wide-band speech, the model's own rate and the common media rates.
ALLOWED_SAMPLE_RATES: Final[tuple[int, ...]] = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


class UnsupportedSampleRateError(ValueError):
    """A sample rate outside :data:`ALLOWED_SAMPLE_RATES`."""


def check_sample_rate(rate: int) -> int:
    if rate not in ALLOWED_SAMPLE_RATES:
        allowed = ", ".join(str(r) for r in ALLOWED_SAMPLE_RATES)
        raise UnsupportedSampleRateError(f"sample_rate must be one of {allowed}; got {rate}")
    return rate


class StreamResampler:
    """Resamples consecutive chunks of one utterance from 24 kHz to `rate`.

    `process(chunk)` returns what is ready now (soxr holds back a few milliseconds of
    look-ahead); `finish()` returns the rest. At 24 kHz both pass audio through untouched.
    """

    def __init__(self, rate: int) -> None:
        self.rate = check_sample_rate(rate)
        self._stream = (
            None if rate == SAMPLE_RATE else soxr.ResampleStream(SAMPLE_RATE, rate, 1, dtype="float32", quality="HQ")
        )

    def process(self, pcm: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        if self._stream is None:
            return pcm
        out: npt.NDArray[np.float32] = self._stream.resample_chunk(np.ascontiguousarray(pcm, dtype=np.float32))
        return out

    def finish(self) -> npt.NDArray[np.float32]:
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        out: npt.NDArray[np.float32] = self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        return out


def resample_whole(pcm: npt.NDArray[np.float32], rate: int) -> npt.NDArray[np.float32]:
    """One complete utterance at `rate`, through the same streaming resampler a stream uses,
    so a whole response is sample for sample the concatenation of the streamed one."""
    resampler = StreamResampler(rate)
    head = resampler.process(pcm)
    tail = resampler.finish()
    return np.concatenate([head, tail]) if tail.size else head
