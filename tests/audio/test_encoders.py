"""Every output format, whole and streamed, decodes back to the audio we fed in.

Decoding deliberately goes through a different library than the one that
encoded where one exists (libsndfile/mpg123/libopus for PyAV output, FFmpeg for
libsndfile output), so a bug shared by encoder and decoder cannot hide.
"""

from __future__ import annotations

import io
import struct

import av
import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

from server.audio import (
    SAMPLE_RATE,
    SUPPORTED_FORMATS,
    UnknownFormatError,
    create_encoder,
    encode_whole,
    float_to_int16,
    get_format,
    to_pcm16_bytes,
)

N_CHUNKS = 10

# Extra decoded length each codec may legitimately add (priming/padding), in s.
# MP3 streamed has no LAME tag, so the ~1105-sample encoder delay plus frame
# padding stays in (~64 ms); ADTS carries no priming info (1024 samples).
LENGTH_TOLERANCE_S = {
    "mp3": 2 * 1152 / SAMPLE_RATE,
    "aac": 2 * 1024 / SAMPLE_RATE,
    "opus": 0.06,
    "ogg": 0.06,
    "flac": 0.0,
    "wav": 0.0,
    "pcm": 0.0,
}
LOSSLESS = ("pcm", "wav", "flac")
EXPECTED_MEDIA_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
    "ogg": "audio/ogg",
}


@pytest.fixture(scope="module")
def signal() -> npt.NDArray[np.float32]:
    """2 s of a 440 Hz tone with a little noise (pure tones are atypically easy)."""
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    noise = np.random.default_rng(1234).standard_normal(t.size)
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * noise).astype(np.float32)


def encode_streamed(pcm: npt.NDArray[np.float32], fmt: str, n_chunks: int = N_CHUNKS) -> list[bytes]:
    """All pieces a streaming response would send, the finish() tail last."""
    encoder = create_encoder(fmt, streaming=True)
    return [encoder.encode(chunk) for chunk in np.array_split(pcm, n_chunks)] + [encoder.finish()]


def decode_pyav(data: bytes) -> tuple[npt.NDArray[np.float32], int, int]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        frames = [frame for frame in container.decode(stream)]
    rate, channels = frames[0].sample_rate, frames[0].layout.nb_channels
    samples = np.concatenate([frame.to_ndarray().reshape(-1) for frame in frames]).astype(np.float32)
    if frames[0].format.name.startswith("s16"):
        samples /= 32768.0
    return samples, rate, channels


def decode_soundfile(data: bytes) -> tuple[npt.NDArray[np.float32], int, int]:
    samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return samples[:, 0].copy(), rate, samples.shape[1]


def decode(data: bytes, fmt: str, streamed: bool) -> tuple[npt.NDArray[np.float32], int, int]:
    """(mono samples, sample rate, channel count), via a decoder independent of the encoder."""
    if fmt == "pcm":
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0, SAMPLE_RATE, 1
    if fmt in ("mp3", "opus") or (fmt == "flac" and not streamed):
        return decode_soundfile(data)
    # wav/ogg come from our header code or libsndfile; aac has no other decoder;
    # libsndfile cannot read an unknown-length (streamed) FLAC from memory.
    return decode_pyav(data)


def dominant_frequency(pcm: npt.NDArray[np.float32], sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(pcm.size)))
    return float(np.argmax(spectrum) * sample_rate / pcm.size)


def assert_decodes_to(data: bytes, fmt: str, streamed: bool, reference: npt.NDArray[np.float32]) -> None:
    samples, rate, channels = decode(data, fmt, streamed)
    assert channels == 1
    # libopus always decodes at 48 kHz in FFmpeg; libsndfile reports OpusHead's 24 kHz.
    assert rate == SAMPLE_RATE or (fmt == "opus" and rate == 48000)
    duration, expected = samples.size / rate, reference.size / SAMPLE_RATE
    assert expected - 1e-9 <= duration <= expected + LENGTH_TOLERANCE_S[fmt] + 1e-9, (duration, expected)
    assert np.sqrt(np.mean(samples**2)) > 0.01
    assert dominant_frequency(samples, rate) == pytest.approx(440, rel=0.02)
    if fmt in LOSSLESS:
        np.testing.assert_array_equal(np.rint(samples * 32768).astype(np.int16), float_to_int16(reference))


@pytest.mark.parametrize("fmt", SUPPORTED_FORMATS)
def test_whole_file_decodes(fmt: str, signal: npt.NDArray[np.float32]) -> None:
    assert_decodes_to(encode_whole(signal, fmt), fmt, False, signal)


@pytest.mark.parametrize("fmt", SUPPORTED_FORMATS)
def test_whole_mode_fed_in_chunks_decodes(fmt: str, signal: npt.NDArray[np.float32]) -> None:
    encoder = create_encoder(fmt, streaming=False)
    data = b"".join(encoder.encode(chunk) for chunk in np.array_split(signal, N_CHUNKS)) + encoder.finish()
    assert_decodes_to(data, fmt, False, signal)


@pytest.mark.parametrize("fmt", SUPPORTED_FORMATS)
def test_streamed_concatenation_is_one_valid_file(fmt: str, signal: npt.NDArray[np.float32]) -> None:
    pieces = encode_streamed(signal, fmt)
    assert_decodes_to(b"".join(pieces), fmt, True, signal)


@pytest.mark.parametrize("fmt", SUPPORTED_FORMATS)
def test_streamed_bytes_flow_before_finish(fmt: str, signal: npt.NDArray[np.float32]) -> None:
    pieces = encode_streamed(signal, fmt)
    sent_early = sum(len(piece) for piece in pieces[:-1])
    # Ogg Vorbis (libsndfile) flushes ~4 KiB pages, the burstiest format; even it
    # has sent well over half of the response before finish().
    assert sent_early >= 0.5 * sum(len(piece) for piece in pieces)
    assert pieces[0], "the first chunk should already produce bytes"


def test_streamed_wav_header_has_unknown_sizes(signal: npt.NDArray[np.float32]) -> None:
    data = b"".join(encode_streamed(signal, "wav"))
    riff, riff_size, wave, fmt_id, fmt_size, tag, channels, rate, byte_rate, align, bits, data_id, data_size = (
        struct.unpack("<4sI4s4sIHHIIHH4sI", data[:44])
    )
    assert (riff, wave, fmt_id, data_id) == (b"RIFF", b"WAVE", b"fmt ", b"data")
    assert riff_size == data_size == 0xFFFFFFFF
    assert (fmt_size, tag, channels, rate, byte_rate, align, bits) == (16, 1, 1, 24000, 48000, 2, 16)
    assert data[44:] == to_pcm16_bytes(signal)


def test_whole_wav_header_has_exact_sizes(signal: npt.NDArray[np.float32]) -> None:
    data = encode_whole(signal, "wav")
    assert len(data) == 44 + 2 * signal.size
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8
    assert data[36:40] == b"data"
    assert struct.unpack("<I", data[40:44])[0] == 2 * signal.size


def test_pcm_streamed_equals_whole(signal: npt.NDArray[np.float32]) -> None:
    whole = encode_whole(signal, "pcm")
    assert b"".join(encode_streamed(signal, "pcm")) == whole
    assert whole == float_to_int16(signal).astype("<i2").tobytes()


@pytest.mark.parametrize("fmt", ["pcm", "wav", "flac"])
@pytest.mark.parametrize("streaming", [False, True])
def test_overshoot_is_clipped_not_wrapped(fmt: str, streaming: bool) -> None:
    pcm = np.tile(np.array([2.0, -2.0, 1.0, -1.0, 0.5, 0.0], dtype=np.float32), 100)
    encoder = create_encoder(fmt, streaming=streaming)
    data = encoder.encode(pcm) + encoder.finish()
    samples, _, _ = decode(data, fmt, streaming)
    decoded = np.rint(samples[:6] * 32768).astype(np.int16)
    np.testing.assert_array_equal(decoded, [32767, -32768, 32767, -32768, 16384, 0])


@pytest.mark.parametrize("fmt", SUPPORTED_FORMATS)
@pytest.mark.parametrize("streaming", [False, True])
def test_empty_input_does_not_crash(fmt: str, streaming: bool) -> None:
    encoder = create_encoder(fmt, streaming=streaming)
    data = encoder.encode(np.zeros(0, dtype=np.float32)) + encoder.finish()
    assert isinstance(data, bytes)
    if fmt == "pcm":
        assert data == b""
    elif fmt in ("wav", "flac", "ogg"):
        # Formats with a real file header yield a valid zero-length file.
        with av.open(io.BytesIO(data)) as container:
            assert sum(frame.samples for frame in container.decode(audio=0)) == 0


@pytest.mark.parametrize("fmt", ["opus", "mp3", "ogg", "flac"])
def test_other_sample_rates(fmt: str) -> None:
    """22.05 kHz is not a libopus rate: the encoder must resample, not fail."""
    rate = 22050
    t = np.arange(rate) / rate
    pcm = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    encoder = create_encoder(fmt, streaming=True, sample_rate=rate)
    data = b"".join(encoder.encode(chunk) for chunk in np.array_split(pcm, 4)) + encoder.finish()
    samples, decoded_rate, _ = decode_pyav(data)
    assert samples.size / decoded_rate == pytest.approx(1.0, abs=0.1)
    assert dominant_frequency(samples, decoded_rate) == pytest.approx(440, rel=0.02)


@pytest.mark.parametrize("fmt", SUPPORTED_FORMATS)
def test_format_registry(fmt: str) -> None:
    spec = get_format(fmt)
    assert spec.name == fmt
    assert spec.media_type == EXPECTED_MEDIA_TYPES[fmt]
    assert create_encoder(fmt, streaming=True).spec is spec


def test_opus_and_ogg_extensions() -> None:
    assert get_format("opus").extension == "opus"
    assert get_format("ogg").extension == "ogg"
    assert set(SUPPORTED_FORMATS) == set(EXPECTED_MEDIA_TYPES)


@pytest.mark.parametrize("name", ["m4a", "webm", "", "mp4", "wave"])
def test_unknown_format_raises(name: str, signal: npt.NDArray[np.float32]) -> None:
    with pytest.raises(UnknownFormatError):
        get_format(name)
    with pytest.raises(ValueError):
        create_encoder(name, streaming=True)
    with pytest.raises(UnknownFormatError):
        encode_whole(signal, name)


def test_stereo_input_is_rejected() -> None:
    encoder = create_encoder("mp3", streaming=True)
    with pytest.raises(ValueError, match="mono"):
        encoder.encode(np.zeros((100, 2), dtype=np.float32))


def test_finish_twice_raises() -> None:
    encoder = create_encoder("opus", streaming=True)
    encoder.finish()
    with pytest.raises(RuntimeError):
        encoder.finish()
