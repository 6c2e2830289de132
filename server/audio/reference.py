"""Decoding an uploaded reference recording for voice cloning.

The model package would happily take a path, a URL or base64 as `ref_audio` and fetch it;
a server must never let a request's string get there. So uploads are decoded here, from
bytes in memory, into the one shape the adapter passes on: float32 mono at 24 kHz.

A compressed file can hold far more audio than its size suggests (an hour of silence is a
few hundred kilobytes of FLAC, about 2 GB once decoded), so memory is bounded twice: a
file whose header or container declares more than the allowed length is refused before
anything is decoded, and decoding runs block by block (libsndfile) or packet by packet
(FFmpeg), mixing each block down to mono and stopping as soon as the running total passes
the limit, for files that declare nothing or lie.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from fractions import Fraction

import numpy as np
import soundfile as sf

SAMPLE_RATE = 24_000
MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 192_000
# Samples (all channels together) read per libsndfile block: a few MB whatever the layout.
BLOCK_SAMPLES = 1 << 18
# Durations FFmpeg declares for some containers are estimates from the bit rate (ADTS, MP3
# without a header frame); refuse up front only what is clearly too long and let the
# running limit decide the rest.
DECLARED_TOLERANCE = 1.25
# Resampling ratios are kept to small integers so an odd input rate cannot make the
# polyphase filter enormous; the error this allows (well under 0.1 %) is inaudible.
MAX_RATIO_DENOMINATOR = 1000
# libsndfile reports this many frames when a stream does not say how long it is.
_UNKNOWN_FRAMES = 1 << 62


class ReferenceAudioError(ValueError):
    """The upload is not usable as a reference recording; the message says why."""


class _RunningLimit:
    """Counts decoded mono samples and stops the decode once they pass `max_seconds`."""

    def __init__(self, rate: int, max_seconds: float) -> None:
        self.max_seconds = max_seconds
        self.max_samples = int(max_seconds * rate) + 1
        self.parts: list[np.ndarray] = []
        self.samples = 0

    def add(self, mono: np.ndarray) -> None:
        self.samples += int(mono.shape[0])
        if self.samples > self.max_samples:
            raise too_long(self.max_seconds)
        self.parts.append(np.asarray(mono, dtype=np.float32))

    def result(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.zeros(0, dtype=np.float32)


def too_long(max_seconds: float, declared: float | None = None) -> ReferenceAudioError:
    length = f"declares {declared:.1f} s" if declared is not None else "is longer than that"
    return ReferenceAudioError(f"the reference audio {length}; at most {max_seconds:g} s is allowed")


def decode_reference(data: bytes, min_seconds: float, max_seconds: float) -> np.ndarray:
    """Decode, mix down, resample to 24 kHz and check the duration of a reference upload."""
    if not data:
        raise ReferenceAudioError("the reference audio file is empty")
    samples, rate = _decode(data, max_seconds)
    if samples.size == 0:
        raise ReferenceAudioError("the reference audio contains no samples")
    seconds = samples.shape[0] / rate
    if seconds < min_seconds:
        raise ReferenceAudioError(
            f"the reference audio is {seconds:.2f} s long; at least {min_seconds:g} s is required"
        )
    if not np.all(np.isfinite(samples)):
        raise ReferenceAudioError("the reference audio contains invalid samples")
    return np.ascontiguousarray(_resample(samples, rate), dtype=np.float32)


def _check_rate(rate: int) -> int:
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise ReferenceAudioError(
            f"the reference audio's sample rate is {rate} Hz; {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz is supported"
        )
    return rate


def _decode(data: bytes, max_seconds: float) -> tuple[np.ndarray, int]:
    """Mono float32 samples and their rate. libsndfile first (wav, flac, ogg), then FFmpeg
    through PyAV for everything else (mp3, m4a, opus in webm, ...)."""
    try:
        sound = sf.SoundFile(io.BytesIO(data))
    except Exception:
        return _decode_av(data, max_seconds)
    with sound:
        rate = _check_rate(int(sound.samplerate))
        declared = int(sound.frames)
        if 0 < declared < _UNKNOWN_FRAMES and declared / rate > max_seconds:
            raise too_long(max_seconds, declared / rate)
        limit = _RunningLimit(rate, max_seconds)
        try:
            for block in _blocks(sound):
                limit.add(block.mean(axis=1))
        except ReferenceAudioError:
            raise
        except Exception as exc:
            raise ReferenceAudioError("the reference audio is corrupt: it could not be decoded to the end") from exc
    return limit.result(), rate


def _blocks(sound: sf.SoundFile) -> Iterator[np.ndarray]:
    frames = max(1, BLOCK_SAMPLES // max(1, int(sound.channels)))
    while True:
        block = sound.read(frames, dtype="float32", always_2d=True)
        if block.shape[0] == 0:
            return
        yield block


def _decode_av(data: bytes, max_seconds: float) -> tuple[np.ndarray, int]:
    import av  # imported here: only uploads that libsndfile cannot read need FFmpeg

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise ReferenceAudioError("the uploaded file has no audio stream")
            stream = container.streams.audio[0]
            rate = _check_rate(int(stream.codec_context.sample_rate or 0))
            declared = _declared_seconds(container, stream)
            if declared is not None and declared > max_seconds * DECLARED_TOLERANCE + 1:
                raise too_long(max_seconds, declared)
            limit = _RunningLimit(rate, max_seconds)
            # Let FFmpeg do the format work: every frame becomes packed float32 mono at its rate.
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            for packet in container.demux(stream):
                for frame in packet.decode():
                    for out in resampler.resample(frame):
                        limit.add(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                limit.add(out.to_ndarray().reshape(-1))
    except ReferenceAudioError:
        raise
    except Exception as exc:
        raise ReferenceAudioError("the uploaded file is not audio in a supported format, or it is corrupt") from exc
    return limit.result(), rate


def _declared_seconds(container: object, stream: object) -> float | None:
    """The stream's or container's declared duration in seconds, when it declares one."""
    duration = getattr(stream, "duration", None)
    time_base = getattr(stream, "time_base", None)
    if duration is not None and time_base is not None:
        return float(duration * time_base)
    container_duration = getattr(container, "duration", None)
    if container_duration is not None:
        return float(container_duration) / 1_000_000  # AV_TIME_BASE
    return None


def _resample(samples: np.ndarray, rate: int) -> np.ndarray:
    if rate == SAMPLE_RATE:
        return samples
    from scipy.signal import resample_poly  # imported here: most uploads need it once

    ratio = Fraction(SAMPLE_RATE, rate).limit_denominator(MAX_RATIO_DENOMINATOR)
    resampled: np.ndarray = resample_poly(samples, ratio.numerator, ratio.denominator).astype(np.float32)
    return resampled
