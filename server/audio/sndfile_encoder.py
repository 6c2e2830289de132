"""Formats written with soundfile (libsndfile): whole WAV files and Ogg Vorbis.

Ogg Vorbis goes through libsndfile because the FFmpeg build inside PyAV has no
libvorbis, only FFmpeg's experimental native Vorbis encoder, which refuses mono
input ("only supports 2 channels") and is noticeably worse.
"""

from __future__ import annotations

import io
from typing import Final

import numpy as np
import numpy.typing as npt
import soundfile as sf

from .dsp import SAMPLE_RATE, clip_float, float_to_int16
from .formats import FormatSpec
from .sinks import StreamSink

# format name -> (libsndfile major format, subtype)
SNDFILE_FORMATS: Final = {
    "wav": ("WAV", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
}


class SoundFileEncoder:
    """Incremental libsndfile writer.

    ``streaming=True`` uses a :class:`StreamSink`; that is only valid for
    formats libsndfile writes strictly sequentially (Ogg Vorbis: it emits ~4 KiB
    pages, i.e. bytes arrive in bursts every ~0.5-1 s of audio).
    ``streaming=False`` writes to a seekable buffer so libsndfile can fix up
    header sizes on close (this is the whole-file WAV path).
    """

    def __init__(self, spec: FormatSpec, *, streaming: bool, sample_rate: int = SAMPLE_RATE) -> None:
        major, subtype = SNDFILE_FORMATS[spec.name]
        if streaming and major != "OGG":
            # WAV/FLAC headers are patched by seeking back; a stream cannot do it.
            raise ValueError(f"{spec.name} cannot be streamed through libsndfile")
        self.spec = spec
        self._int16 = subtype.startswith("PCM")
        self._finished = False
        self._sink: StreamSink | io.BytesIO = StreamSink() if streaming else io.BytesIO()
        self._file = sf.SoundFile(
            self._sink,
            "w",
            samplerate=sample_rate,
            channels=1,
            format=major,
            subtype=subtype,
        )

    def _drain(self) -> bytes:
        return self._sink.drain() if isinstance(self._sink, StreamSink) else b""

    def encode(self, pcm: npt.NDArray[np.float32]) -> bytes:
        """Feed a chunk; return the bytes that became ready (may be b"")."""
        if self._finished:
            raise RuntimeError("encode() after finish()")
        if len(pcm) == 0:
            return b""
        # Convert with our own helper so every 16-bit format (pcm, streamed and
        # whole wav) carries bit-identical samples for the same input.
        self._file.write(float_to_int16(pcm) if self._int16 else clip_float(pcm))
        return self._drain()

    def finish(self) -> bytes:
        """Close the file; return the remaining bytes (whole file if not streaming)."""
        if self._finished:
            raise RuntimeError("finish() called twice")
        self._finished = True
        self._file.close()
        if isinstance(self._sink, StreamSink):
            return self._sink.drain()
        return self._sink.getvalue()
