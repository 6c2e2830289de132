"""Decoding an uploaded reference recording for voice cloning.

The model package would happily take a path, a URL or base64 as `ref_audio` and fetch it;
a server must never let a request's string get there. So uploads are decoded here, from
bytes in memory, into the one shape the adapter passes on: float32 mono at 24 kHz.
"""

from __future__ import annotations

import io
from math import gcd

import numpy as np
import soundfile as sf

SAMPLE_RATE = 24_000


class ReferenceAudioError(ValueError):
    """The upload is not usable as a reference recording; the message says why."""


def decode_reference(data: bytes, min_seconds: float, max_seconds: float) -> np.ndarray:
    """Decode, mix down, resample to 24 kHz and check the duration of a reference upload."""
    if not data:
        raise ReferenceAudioError("the reference audio file is empty")
    samples, rate = _decode(data)
    if samples.size == 0 or rate <= 0:
        raise ReferenceAudioError("the reference audio contains no samples")
    seconds = samples.shape[0] / rate
    if seconds < min_seconds:
        raise ReferenceAudioError(
            f"the reference audio is {seconds:.2f} s long; at least {min_seconds:g} s is required"
        )
    if seconds > max_seconds:
        raise ReferenceAudioError(f"the reference audio is {seconds:.2f} s long; at most {max_seconds:g} s is allowed")
    mono = _resample(samples, rate)
    if not np.all(np.isfinite(mono)):
        raise ReferenceAudioError("the reference audio contains invalid samples")
    return np.ascontiguousarray(mono, dtype=np.float32)


def _decode(data: bytes) -> tuple[np.ndarray, int]:
    """Mono float32 samples and their rate. libsndfile first (wav, flac, ogg), then FFmpeg
    through PyAV for everything else (mp3, m4a, opus in webm, ...)."""
    try:
        frames, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        return frames.mean(axis=1), int(rate)
    except Exception:
        pass
    return _decode_av(data)


def _decode_av(data: bytes) -> tuple[np.ndarray, int]:
    import av  # imported here: only uploads that libsndfile cannot read need FFmpeg

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise ReferenceAudioError("the uploaded file has no audio stream")
            stream = container.streams.audio[0]
            # Let FFmpeg do the format work: every frame becomes packed float32 mono at its rate.
            resampler = av.AudioResampler(format="flt", layout="mono", rate=stream.codec_context.sample_rate)
            parts: list[np.ndarray] = []
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                parts.append(out.to_ndarray().reshape(-1))
            rate = int(stream.codec_context.sample_rate or 0)
    except ReferenceAudioError:
        raise
    except Exception as exc:
        raise ReferenceAudioError("the uploaded file is not audio in a supported format, or it is corrupt") from exc
    samples = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, dtype=np.float32)
    return samples, rate


def _resample(samples: np.ndarray, rate: int) -> np.ndarray:
    if rate == SAMPLE_RATE:
        return samples
    from scipy.signal import resample_poly  # imported here: most uploads need it once

    divisor = gcd(SAMPLE_RATE, rate)
    resampled: np.ndarray = resample_poly(samples, SAMPLE_RATE // divisor, rate // divisor)
    return resampled
