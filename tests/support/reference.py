"""Reference recordings made in the test: a tone with noise, in any container."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf


def tone(seconds: float, rate: int = 24_000, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A 220 Hz tone plus a little noise, shape (samples, channels), float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.shape[0])
    return np.repeat(mono[:, None], channels, axis=1).astype(np.float32)


def encode_soundfile(audio: np.ndarray, rate: int, fmt: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format=fmt.upper())
    return buffer.getvalue()


def encode_mp3(audio: np.ndarray, rate: int) -> bytes:
    import av

    buffer = io.BytesIO()
    layout = "mono" if audio.shape[1] == 1 else "stereo"
    with av.open(buffer, mode="w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio.T), format="fltp", layout=layout)
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def wav(seconds: float = 2.0, rate: int = 24_000, seed: int = 0) -> bytes:
    return encode_soundfile(tone(seconds, rate, seed=seed), rate, "wav")
