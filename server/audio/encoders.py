"""Turn float32 model audio into response bytes, incrementally or in one go.

Every encoder has the same two-call interface so the HTTP layer does not care
about the format::

    enc = create_encoder("mp3", streaming=True)
    for chunk in model_chunks:
        yield enc.encode(chunk)   # may be b"" while the codec fills a frame
    yield enc.finish()            # flushes the codec and writes any trailer

The concatenation of all returned bytes is one valid file of that format.
Which library produces which format:

======  ==================================  ================================
format  streaming=True                      streaming=False
======  ==================================  ================================
pcm     :class:`PcmEncoder`                 same
wav     :class:`WavStreamEncoder`           soundfile, exact header sizes
        (header sizes 0xFFFFFFFF)
mp3     PyAV libmp3lame                     same, plus Xing/LAME length tag
opus    PyAV libopus in Ogg, 20 ms pages    same, 1 s pages
aac     PyAV aac ("fast" coder), ADTS       same
flac    PyAV flac, length "unknown"         same, STREAMINFO length + MD5
ogg     soundfile (libvorbis) in Ogg        same
======  ==================================  ================================
"""

from __future__ import annotations

import struct
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt

from .dsp import SAMPLE_RATE, to_pcm16_bytes
from .formats import FormatSpec, get_format
from .pyav_encoder import CODECS, PyAVEncoder
from .resample import resample_whole
from .sndfile_encoder import SoundFileEncoder


class AudioEncoder(Protocol):
    """Incremental encoder for one response."""

    spec: FormatSpec

    def encode(self, pcm: npt.NDArray[np.float32]) -> bytes:
        """Feed a mono float32 chunk; return bytes ready to send now (may be b"")."""
        ...

    def finish(self) -> bytes:
        """Flush everything; return the tail. Must be called exactly once."""
        ...


class PcmEncoder:
    """Headerless int16 little-endian samples: every chunk converts on its own."""

    def __init__(self, spec: FormatSpec) -> None:
        self.spec = spec

    def encode(self, pcm: npt.NDArray[np.float32]) -> bytes:
        return to_pcm16_bytes(pcm)

    def finish(self) -> bytes:
        return b""


# When the length is unknown, RIFF/data sizes are set to the maximum (what
# OpenAI's streaming WAV does); players then read until end of stream.
_UNKNOWN_SIZE: Final = 0xFFFFFFFF


def wav_header(sample_rate: int, data_bytes: int = _UNKNOWN_SIZE, channels: int = 1, bits: int = 16) -> bytes:
    """Canonical 44-byte PCM WAVE header; default sizes mean "unknown length"."""
    block_align = channels * bits // 8
    riff_size = _UNKNOWN_SIZE if data_bytes == _UNKNOWN_SIZE else 36 + data_bytes
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        riff_size,
        b"WAVE",
        b"fmt ",
        16,  # fmt chunk size
        1,  # WAVE_FORMAT_PCM
        channels,
        sample_rate,
        sample_rate * block_align,
        block_align,
        bits,
        b"data",
        data_bytes,
    )


class WavStreamEncoder:
    """Streamed WAV: an "unknown length" header, then raw int16 frames."""

    def __init__(self, spec: FormatSpec, sample_rate: int = SAMPLE_RATE) -> None:
        self.spec = spec
        self._header: bytes | None = wav_header(sample_rate)

    def _take_header(self) -> bytes:
        header, self._header = self._header or b"", None
        return header

    def encode(self, pcm: npt.NDArray[np.float32]) -> bytes:
        return self._take_header() + to_pcm16_bytes(pcm)

    def finish(self) -> bytes:
        # Only non-empty if no chunk was ever fed: still a valid, empty WAV.
        return self._take_header()


def create_encoder(fmt: str, *, streaming: bool, sample_rate: int = SAMPLE_RATE) -> AudioEncoder:
    """Build the encoder for format ``fmt``.

    ``streaming=True`` makes bytes flow out of :meth:`AudioEncoder.encode` as soon
    as the codec produces them. ``streaming=False`` allows the encoder to hold
    everything until :meth:`AudioEncoder.finish` in exchange for exact headers.

    Raises:
        UnknownFormatError: ``fmt`` is not a supported format name.
        ValueError: ``sample_rate`` is not a positive integer.
    """
    spec = get_format(fmt)
    if sample_rate <= 0 or int(sample_rate) != sample_rate:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    sample_rate = int(sample_rate)  # numpy ints would upset the C libraries
    if spec.name == "pcm":
        return PcmEncoder(spec)
    if spec.name == "wav" and streaming:
        return WavStreamEncoder(spec, sample_rate)
    if spec.name in CODECS:
        return PyAVEncoder(spec, streaming=streaming, sample_rate=sample_rate)
    return SoundFileEncoder(spec, streaming=streaming, sample_rate=sample_rate)


def encode_whole(pcm: npt.NDArray[np.float32], fmt: str, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Encode a complete utterance into one file of format ``fmt``."""
    encoder = create_encoder(fmt, streaming=False, sample_rate=sample_rate)
    return encoder.encode(pcm) + encoder.finish()


def encode_whole_at(pcm: npt.NDArray[np.float32], fmt: str, sample_rate: int) -> bytes:
    """A complete utterance resampled to `sample_rate` (as a stream of it would be) and encoded
    as one file whose header carries that rate."""
    return encode_whole(resample_whole(pcm, sample_rate), fmt, sample_rate)
