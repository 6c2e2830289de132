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


# A run of exact zeros this long (10 ms at 24 kHz) is silence: a pause a script asked for
# (model audio never holds one), kept exact at the client's rate (see StreamResampler).
MIN_SILENCE_SAMPLES: Final = 240


class StreamResampler:
    """Resamples consecutive chunks of one utterance from 24 kHz to `rate`.

    `process(chunk)` returns what is ready now (soxr holds back a few milliseconds of
    look-ahead); `finish()` returns the rest. At 24 kHz both pass audio through untouched.

    Silence stays exact: where a run of exact zeros reaches MIN_SILENCE_SAMPLES the filter is
    flushed (the speech before it ends cleanly), zeros are sent as they come, as many as put
    the output where the input is (round(samples in × rate / 24000)), and the speech after it
    starts a fresh filter. Otherwise the filter would carry the speech's edges tens of
    milliseconds into the silence. Zeros that may still turn out to be a short gap inside
    speech are held until the next sample tells. The decisions depend on the samples alone,
    never on where chunks begin, so any chunking still gives the same output.
    """

    def __init__(self, rate: int) -> None:
        self.rate = check_sample_rate(rate)
        self._stream = None if rate == SAMPLE_RATE else self._new_stream()
        self._zeros = 0  # zeros received and not yet resampled or sent
        self._silent = False  # inside a run of zeros taken as silence
        self._in = 0  # samples received and resampled or sent as silence
        self._out = 0  # samples sent so far

    def _new_stream(self) -> soxr.ResampleStream:
        return soxr.ResampleStream(SAMPLE_RATE, self.rate, 1, dtype="float32", quality="HQ")

    def process(self, pcm: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        if self._stream is None:
            return pcm
        pcm = np.ascontiguousarray(pcm, dtype=np.float32)
        out: list[npt.NDArray[np.float32]] = []
        zero = pcm == 0
        edges = np.flatnonzero(np.diff(zero.view(np.int8))) + 1
        for run in np.split(pcm, edges):
            if not run.size:
                continue
            if run[0] == 0:
                self._zeros += run.shape[0]
                if self._silent or self._zeros >= MIN_SILENCE_SAMPLES:
                    out.append(self._silence())
            else:
                out.append(self._speech(run))
        return _joined(out)

    def _resample(self, pcm: npt.NDArray[np.float32], last: bool = False) -> npt.NDArray[np.float32]:
        assert self._stream is not None
        result: npt.NDArray[np.float32] = self._stream.resample_chunk(pcm, last=last)
        self._out += result.shape[0]
        return result

    def _speech(self, run: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        if self._silent:  # the silence is over: a fresh filter for what follows
            self._stream, self._silent = self._new_stream(), False
        held, self._zeros = self._zeros, 0
        self._in += held + run.shape[0]
        if held:
            return _joined([self._resample(np.zeros(held, dtype=np.float32)), self._resample(run)])
        return self._resample(run)

    def _silence(self) -> npt.NDArray[np.float32]:
        parts: list[npt.NDArray[np.float32]] = []
        if not self._silent:  # the speech before ends here: flush what the filter holds
            parts.append(self._resample(np.zeros(0, dtype=np.float32), last=True))
            self._silent = True
        self._in += self._zeros
        self._zeros = 0
        due = round(self._in * self.rate / SAMPLE_RATE) - self._out
        if due > 0:
            parts.append(np.zeros(due, dtype=np.float32))
            self._out += due
        return _joined(parts)

    def finish(self) -> npt.NDArray[np.float32]:
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        if self._zeros and not self._silent:
            return _joined([self._resample(np.zeros(self._zeros, dtype=np.float32)), self._flush()])
        if self._silent:
            return np.zeros(0, dtype=np.float32)
        return self._flush()

    def _flush(self) -> npt.NDArray[np.float32]:
        self._zeros = 0
        return self._resample(np.zeros(0, dtype=np.float32), last=True)


def _joined(parts: list[npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
    parts = [part for part in parts if part.size]
    if not parts:
        return np.zeros(0, dtype=np.float32)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def resample_whole(pcm: npt.NDArray[np.float32], rate: int) -> npt.NDArray[np.float32]:
    """One complete utterance at `rate`, through the same streaming resampler a stream uses,
    so a whole response is sample for sample the concatenation of the streamed one."""
    resampler = StreamResampler(rate)
    head = resampler.process(pcm)
    tail = resampler.finish()
    return np.concatenate([head, tail]) if tail.size else head
