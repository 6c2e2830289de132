"""Compressed formats encoded in-process with PyAV (FFmpeg libraries in the wheel).

One class covers mp3 (libmp3lame), opus (libopus in Ogg), aac (FFmpeg's native
AAC-LC in ADTS) and flac: they differ only in muxer, encoder and options, so a
table of :class:`CodecConfig` drives a single implementation.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType
from typing import Final

import av
import numpy as np
import numpy.typing as npt
from av.audio.stream import AudioStream

from .dsp import SAMPLE_RATE, clip_float, float_to_int16
from .formats import FormatSpec
from .sinks import StreamSink

# Ogg muxer ``page_duration`` is in microseconds (FFmpeg default: 1 s). A page
# is only written once the next packet would overflow it, so with 1 s pages a
# streamed response would stall for up to a second. 20 ms (one Opus frame per
# page) measured ~25 ms from encode() input to bytes out, at the price of ~28
# bytes of page header per 20 ms (~10 kbit/s on top of the 32 kbit/s payload).
# Only applied when streaming -- whole files keep the compact 1 s pages.
OGG_STREAM_PAGE_US: Final = 20_000


@dataclass(frozen=True, slots=True)
class CodecConfig:
    """How to produce one format with FFmpeg."""

    muxer: str
    codec: str
    sample_format: str  # frame format we hand to the encoder (avoids a conversion)
    bit_rate: int | None = None
    codec_options: dict[str, str] = field(default_factory=dict)
    muxer_options: dict[str, str] = field(default_factory=dict)
    stream_muxer_options: dict[str, str] = field(default_factory=dict)


# Bit rates are chosen for 24 kHz mono speech: transparent-ish, far below what
# music would need. AAC uses the "fast" coder: per FFmpeg's docs it is worse
# than the default "twoloop" only below 64 kbit/s, and here it measured ~3.5x
# faster (~400x vs ~110x real time) with no loss in SNR.
CODECS: Final = MappingProxyType(
    {
        "mp3": CodecConfig("mp3", "libmp3lame", "fltp", bit_rate=64_000),
        "opus": CodecConfig(
            "ogg",
            "libopus",
            "flt",
            bit_rate=32_000,
            stream_muxer_options={"page_duration": str(OGG_STREAM_PAGE_US)},
        ),
        "aac": CodecConfig("adts", "aac", "fltp", bit_rate=64_000, codec_options={"aac_coder": "fast"}),
        # FFmpeg's FLAC muxer reserves 8 KiB of PADDING for later tag edits by
        # default; nobody edits tags of a TTS response.
        "flac": CodecConfig("flac", "flac", "s16", muxer_options={"metadata_header_padding": "0"}),
    }
)


def _codec_rate(codec_name: str, sample_rate: int) -> int:
    """Encoder rate for ``sample_rate``: itself if supported, else the nearest above.

    libopus only takes 8/12/16/24/48 kHz, LAME/AAC a fixed list; PyAV's encoder
    front-end resamples automatically when frame and codec rates differ, so
    24 kHz (all of them support it) never resamples.
    """
    rates = av.Codec(codec_name, "w").audio_rates
    if not rates or sample_rate in rates:
        return sample_rate
    higher = [r for r in rates if r >= sample_rate]
    return min(higher) if higher else max(rates)


class PyAVEncoder:
    """Incremental encoder writing one FFmpeg container.

    ``streaming=True`` writes through a non-seekable :class:`StreamSink` and each
    :meth:`encode` returns whatever the muxer has completed so far.
    ``streaming=False`` writes to a seekable buffer and returns everything from
    :meth:`finish`, which lets muxers patch headers at the end (MP3 Xing/LAME
    tag with exact length and encoder delay, FLAC STREAMINFO sample count/MD5).
    """

    def __init__(self, spec: FormatSpec, *, streaming: bool, sample_rate: int = SAMPLE_RATE) -> None:
        self.spec = spec
        self._cfg = CODECS[spec.name]
        self._sample_rate = sample_rate
        self._time_base = Fraction(1, sample_rate)
        self._samples = 0
        self._muxed_any = False
        self._finished = False
        self._sink: StreamSink | io.BytesIO = StreamSink() if streaming else io.BytesIO()

        options = dict(self._cfg.muxer_options)
        if streaming:
            options.update(self._cfg.stream_muxer_options)
        self._container = av.open(self._sink, "w", format=self._cfg.muxer, options=options)
        try:
            stream = self._container.add_stream(
                self._cfg.codec,
                rate=_codec_rate(self._cfg.codec, sample_rate),
                layout="mono",
                options=dict(self._cfg.codec_options),
            )
            if not isinstance(stream, AudioStream):  # narrows add_stream's union type
                raise TypeError(f"{self._cfg.codec} is not an audio encoder")
            self._stream = stream
            if self._cfg.bit_rate:
                self._stream.bit_rate = self._cfg.bit_rate
        except Exception:
            self._container.close()
            raise

    def _frame(self, pcm: npt.NDArray[np.float32]) -> av.AudioFrame:
        fmt = self._cfg.sample_format
        data = float_to_int16(pcm) if fmt == "s16" else clip_float(pcm)
        frame = av.AudioFrame.from_ndarray(data[np.newaxis, :], format=fmt, layout="mono")
        frame.sample_rate = self._sample_rate
        frame.time_base = self._time_base
        frame.pts = self._samples
        return frame

    def _mux(self, frame: av.AudioFrame | None) -> None:
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
            self._muxed_any = True

    def _drain(self) -> bytes:
        return self._sink.drain() if isinstance(self._sink, StreamSink) else b""

    def encode(self, pcm: npt.NDArray[np.float32]) -> bytes:
        """Feed a chunk; return the bytes that became ready (often b"" early on)."""
        if self._finished:
            raise RuntimeError("encode() after finish()")
        if len(pcm) == 0:
            return b""
        frame = self._frame(pcm)
        self._samples += frame.samples
        self._mux(frame)
        return self._drain()

    def finish(self) -> bytes:
        """Flush encoder and muxer; return the remaining bytes (whole file if not streaming)."""
        if self._finished:
            raise RuntimeError("finish() called twice")
        self._finished = True
        try:
            self._mux(None)
            if not self._muxed_any:
                # No audio at all: still write the container header so Ogg/FLAC
                # come out as valid zero-length files (ADTS/MP3 have no header
                # and legitimately end up empty or tag-only).
                self._container.start_encoding()
        finally:
            self._container.close()
        if isinstance(self._sink, StreamSink):
            return self._sink.drain()
        return self._sink.getvalue()
