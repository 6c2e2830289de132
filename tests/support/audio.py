"""Decoding helpers for assertions on real audio bytes."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile as sf


@dataclass(frozen=True)
class Decoded:
    samples: np.ndarray  # float32, mono
    sample_rate: int
    channels: int

    @property
    def duration(self) -> float:
        return self.samples.shape[0] / self.sample_rate

    @property
    def rms(self) -> float:
        return float(np.sqrt(np.mean(np.square(self.samples)))) if self.samples.size else 0.0


def decode_soundfile(data: bytes) -> Decoded:
    """wav / flac / ogg-vorbis through libsndfile."""
    samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return Decoded(samples[:, 0].copy(), int(rate), int(samples.shape[1]))


def decode_pcm16(data: bytes, sample_rate: int = 24_000) -> Decoded:
    assert len(data) % 2 == 0, "pcm must be whole 16-bit samples"
    samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    return Decoded(samples, sample_rate, 1)


def decode_av(data: bytes) -> Decoded:
    """Any container FFmpeg knows (mp3, ogg/opus, adts/aac, flac, wav), through PyAV."""
    import av

    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        channels = stream.codec_context.channels
        frames = [frame.to_ndarray() for frame in container.decode(stream)]
        rate = stream.codec_context.sample_rate
    if not frames:
        return Decoded(np.zeros(0, dtype=np.float32), int(rate), int(channels))
    planar = [f if f.shape[0] == channels else f.reshape(-1, channels).T for f in frames]
    samples = np.concatenate(planar, axis=1)[0]
    if samples.dtype.kind == "i":
        samples = samples.astype(np.float32) / float(np.iinfo(samples.dtype).max)
    return Decoded(samples.astype(np.float32), int(rate), int(channels))


def decode_any(data: bytes, fmt: str) -> Decoded:
    if fmt == "pcm":
        return decode_pcm16(data)
    return decode_av(data)
