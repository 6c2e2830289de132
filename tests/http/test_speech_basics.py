"""/v1/audio/speech on the real engine: audio that decodes, pcm that matches it."""

from __future__ import annotations

import numpy as np

from tests.support.audio import decode_pcm16, decode_soundfile
from tests.support.live_server import LiveServer

SPEECH = {"model": "tts-1", "voice": "Vivian", "input": "Hello there. This is a test."}


def test_wav_decodes_to_24khz_mono_audible_audio(server: LiveServer) -> None:
    with server.client() as client:
        response = client.post("/v1/audio/speech", json={**SPEECH, "response_format": "wav", "seed": 7})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    assert response.headers["content-disposition"] == 'attachment; filename="speech.wav"'
    audio = decode_soundfile(response.content)
    assert audio.sample_rate == 24_000
    assert audio.channels == 1
    assert audio.duration > 0.2
    assert audio.rms > 1e-3
    assert np.isfinite(audio.samples).all()


def test_pcm_is_the_same_audio_as_wav_for_the_same_seed(server: LiveServer) -> None:
    with server.client() as client:
        wav = client.post("/v1/audio/speech", json={**SPEECH, "response_format": "wav", "seed": 11})
        pcm = client.post("/v1/audio/speech", json={**SPEECH, "response_format": "pcm", "seed": 11})
    assert wav.status_code == pcm.status_code == 200
    assert pcm.headers["content-type"] == "audio/pcm"
    from_wav = decode_soundfile(wav.content)
    from_pcm = decode_pcm16(pcm.content)
    assert from_pcm.samples.shape == from_wav.samples.shape
    assert np.allclose(from_pcm.samples, from_wav.samples, atol=1 / 32768)


def test_the_request_is_synthesised_and_logged(server: LiveServer, request_log) -> None:  # type: ignore[no-untyped-def]
    with server.client(headers={"X-Request-ID": "basics-1"}) as client:
        response = client.post("/v1/audio/speech", json={**SPEECH, "response_format": "pcm", "seed": 3})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "basics-1"
    # The line is written once the last byte has been handed over: wait for it.
    line = request_log.wait_for_request("basics-1")
    # Two short sentences are generated as one piece; the first chunk came after two frames.
    assert line["segments"] == line["segments_done"] == 1
    assert line["first_chunk_frames"] == 2
    assert 0 < line["first_chunk_ms"] <= line["ttfa_ms"]
    assert line["status"] == 200
    assert line["voice"] == "Vivian"
    assert line["format"] == "pcm"
    assert line["chars"] == len(SPEECH["input"])
    assert line["inference_ms"] > 0
    assert line["total_ms"] >= line["inference_ms"]
    assert line["audio_seconds"] == len(response.content) / 2 / 24_000
