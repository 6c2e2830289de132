"""Decompression bombs: long stretches of silence that compress to a few hundred kilobytes,
in every container the reference decoder accepts. Some declare their length (the server
must refuse them before decoding); the WebM one is written as a live stream, so it
declares none and only a running limit can stop it."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf


class _LiveStream(io.RawIOBase):
    """A write-only, unseekable sink: the muxer cannot go back to write a duration."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, chunk: bytes) -> int:  # type: ignore[override]
        self.data += bytes(chunk)
        return len(chunk)


def encode_av(fmt: str, codec: str, seconds: int, rate: int, channels: int = 1, seekable: bool = True) -> bytes:
    """`seconds` of silence through FFmpeg's `codec` in container `fmt`."""
    import av

    sink: io.BytesIO | _LiveStream = io.BytesIO() if seekable else _LiveStream()
    layout = "mono" if channels == 1 else "stereo"
    with av.open(sink, mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        second = np.zeros((channels, rate), dtype=np.float32)
        for _ in range(seconds):
            frame = av.AudioFrame.from_ndarray(second, format="fltp", layout=layout)
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return bytes(sink.getvalue() if isinstance(sink, io.BytesIO) else sink.data)


def encode_silence_soundfile(fmt: str, seconds: int, rate: int, channels: int = 1, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with sf.SoundFile(
        buffer, mode="w", samplerate=rate, channels=channels, format=fmt.upper(), subtype=subtype
    ) as sound:
        block = np.zeros((rate * 10, channels), dtype=np.float32)
        for _ in range(seconds // 10):
            sound.write(block)
    return buffer.getvalue()


def bombs(seconds: int = 600) -> dict[str, bytes]:
    """One bomb per container: name -> bytes; every one far over any reference limit."""
    return {
        "flac": encode_silence_soundfile("flac", seconds, 48_000, channels=6),
        "ogg-vorbis": encode_silence_soundfile("ogg", seconds, 16_000),
        # Uncompressed, so merely 8-bit at 8 kHz: still 11 times its size once decoded.
        "wav": encode_silence_soundfile("wav", seconds, 8_000, subtype="PCM_U8"),
        "mp3": encode_av("mp3", "libmp3lame", seconds, 8_000),
        "aac-adts": encode_av("adts", "aac", seconds, 8_000),
        "m4a": encode_av("ipod", "aac", seconds, 8_000),
        # Opus always decodes to 48 kHz, whatever rate went in: 8 kHz keeps encoding quick.
        "opus-ogg": encode_av("ogg", "libopus", seconds, 8_000),
        "webm-undeclared": encode_av("webm", "libopus", seconds, 8_000, seekable=False),
    }
