"""`sample_rate` and the gain fields over HTTP: every format and stream comes back at the
rate asked for (headers and containers say so), a streamed resampled response is sample for
sample the whole resampled one (no clicks at chunk seams), the output cache keys on both, and
the fields this server cannot honour are refused by name."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest
import soxr
from httpx_sse import connect_sse

from server.audio.formats import SUPPORTED_FORMATS
from tests.support.audio import decode_any, decode_pcm16, decode_soundfile
from tests.support.live_server import LiveServer
from tests.support.reference import wav

BODY: dict[str, Any] = {
    "model": "tts-1",
    "voice": "Vivian",
    "input": "Resampled speech, in two sentences. The second one is here.",
    "seed": 5,
    "max_new_tokens": 24,
}
SPEECH = "/v1/audio/speech"


def whole(server: LiveServer, **fields: Any) -> Any:
    with server.client() as client:
        return client.post(SPEECH, json={**BODY, "stream": False, **fields})


def streamed(server: LiveServer, path: str = SPEECH, **fields: Any) -> tuple[Any, bytes]:
    with server.client() as client, client.stream("POST", path, json={**BODY, **fields}) as response:
        parts = list(response.iter_bytes())
    return response, b"".join(parts)


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_streamed_pcm_is_the_whole_resampled_audio_without_seams(server: LiveServer, rate: int) -> None:
    native = whole(server, response_format="pcm")
    resampled = whole(server, response_format="pcm", sample_rate=rate)
    response, stream = streamed(server, response_format="pcm", sample_rate=rate)
    assert resampled.headers["x-sample-rate"] == response.headers["x-sample-rate"] == str(rate)
    # The stream went through the resampler in engine-sized chunks; one filter state over all
    # of them gives exactly the whole response's samples, so no seam can click.
    assert stream == resampled.content
    # ...and that is the 24 kHz audio resampled in one pass by soxr itself (int16 rounding aside).
    reference = soxr.resample(decode_pcm16(native.content).samples, 24_000, rate, quality="HQ")
    got = decode_pcm16(resampled.content, rate).samples
    assert abs(got.shape[0] - reference.shape[0]) <= 2
    n = min(got.shape[0], reference.shape[0])
    assert np.max(np.abs(got[:n] - reference[:n])) < 2e-3
    assert decode_pcm16(resampled.content, rate).rms > 1e-3


@pytest.mark.parametrize("fmt", [f for f in SUPPORTED_FORMATS if f != "pcm"])
def test_every_format_whole_and_streamed_is_at_the_rate_asked(server: LiveServer, fmt: str) -> None:
    native = decode_any(whole(server, response_format=fmt).content, fmt)
    for rate in (8000, 16000, 48000):
        one = whole(server, response_format=fmt, sample_rate=rate)
        response, stream = streamed(server, response_format=fmt, sample_rate=rate)
        assert one.status_code == response.status_code == 200
        assert one.headers["x-sample-rate"] == response.headers["x-sample-rate"] == str(rate)
        for data in (one.content, stream):
            audio = decode_any(data, fmt)
            # Ogg Opus always decodes at 48 kHz, whatever rate was encoded.
            assert audio.sample_rate == (48000 if fmt == "opus" else rate)
            # Codecs pad: a streamed mp3 at 8 kHz carries about 180 ms of encoder delay and
            # padding (72 ms frames, no gapless header in a stream).
            assert audio.duration == pytest.approx(native.duration, abs=0.2)
            assert audio.rms > 1e-4


def test_wav_header_carries_the_rate_whole_and_streamed(server: LiveServer) -> None:
    for rate in (8000, 44100):
        one = whole(server, response_format="wav", sample_rate=rate)
        assert decode_soundfile(one.content).sample_rate == rate
        _, stream = streamed(server, response_format="wav", sample_rate=rate)
        assert int.from_bytes(stream[24:28], "little") == rate  # the fmt chunk's rate
        assert stream[44:] == one.content[44:]  # same samples; only the streamed sizes differ


def test_pcm_route_and_its_headers_follow_the_rate(server: LiveServer) -> None:
    response, data = streamed(server, "/v1/audio/speech/stream/pcm", sample_rate=8000)
    assert response.headers["x-sample-rate"] == response.headers["x-pcm-sample-rate"] == "8000"
    assert data == whole(server, response_format="pcm", sample_rate=8000).content


def test_openai_sse_deltas_join_to_the_whole_resampled_audio(server: LiveServer) -> None:
    body = {**BODY, "response_format": "pcm", "stream_format": "sse", "sample_rate": 16000}
    with server.client() as client, connect_sse(client, "POST", SPEECH, json=body) as source:
        events = [json.loads(event.data) for event in source.iter_sse()]
    audio = b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")
    assert events[-1]["type"] == "speech.audio.done"
    assert audio == whole(server, response_format="pcm", sample_rate=16000).content


def sentences(server: LiveServer, **fields: Any) -> list[bytes]:
    body = {**BODY, **fields}
    with server.client() as client, connect_sse(client, "POST", "/v1/audio/speech/stream", json=body) as source:
        # The `finish` event after [DONE] is test_finish_reasons' business.
        data = [event.data for event in source.iter_sse() if event.event != "finish"]
    assert data[-1] == "[DONE]"
    return [base64.b64decode(item) for item in data[:-1]]


def test_sentence_stream_resamples_each_sentence_whole(server: LiveServer) -> None:
    native = sentences(server)
    resampled = sentences(server, sample_rate=8000)
    assert len(native) == len(resampled) == 2
    for at_24k, at_8k in zip(native, resampled, strict=True):
        reference = soxr.resample(decode_pcm16(at_24k).samples, 24_000, 8000, quality="HQ")
        got = decode_pcm16(at_8k, 8000).samples
        assert abs(got.shape[0] - reference.shape[0]) <= 2
        n = min(got.shape[0], reference.shape[0])
        assert np.max(np.abs(got[:n] - reference[:n])) < 2e-3


def test_clone_answers_at_the_rate_asked(server: LiveServer) -> None:
    data = {"input": "A cloned voice at sixteen kilohertz.", "response_format": "wav", "seed": "3"}
    data |= {"sample_rate": "16000", "max_new_tokens": "24"}
    with server.client() as client:
        response = client.post("/v1/audio/speech/clone", data=data, files={"file": ("ref.wav", wav())})
        refused = client.post(
            "/v1/audio/speech/clone", data={**data, "sample_rate": "44000"}, files={"file": ("ref.wav", wav())}
        )
    assert response.status_code == 200, response.text
    assert response.headers["x-sample-rate"] == "16000"
    assert decode_soundfile(response.content).sample_rate == 16000
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "sample_rate"


def test_an_unsupported_rate_is_refused_naming_the_valid_ones(server: LiveServer) -> None:
    response = whole(server, sample_rate=44000)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "sample_rate"
    assert "8000" in error["message"] and "48000" in error["message"] and "44000" in error["message"]


def test_the_output_cache_keys_on_rate_and_gain(server: LiveServer) -> None:
    # No seed (a hit is the only way to get the same bytes again) and no frame cap (a capped
    # response is never cached: only one that ended on end-of-speech).
    unseeded = {k: v for k, v in BODY.items() if k not in ("seed", "max_new_tokens")} | {
        "input": "Cached at one rate only."
    }
    with server.client() as client:

        def ask(**fields: Any) -> bytes:
            response = client.post(SPEECH, json={**unseeded, "response_format": "pcm", "stream": False, **fields})
            assert response.status_code == 200
            return response.content

        hits = server.health()["cache"]["output"]["hits"]
        first = ask(sample_rate=16000)
        other = ask(sample_rate=8000)
        louder = ask(sample_rate=16000, gain_db=6)
        assert server.health()["cache"]["output"]["hits"] == hits  # three keys, three misses
        assert (ask(sample_rate=16000), ask(sample_rate=8000), ask(sample_rate=16000, gain_db=6)) == (
            first,
            other,
            louder,
        )
        assert server.health()["cache"]["output"]["hits"] == hits + 3


def test_gain_is_one_constant_over_the_whole_response(server: LiveServer) -> None:
    plain = decode_pcm16(whole(server, response_format="pcm").content).samples
    halved = decode_pcm16(whole(server, response_format="pcm", volume_multiplier=0.5).content).samples
    quieter = decode_pcm16(whole(server, response_format="pcm", gain_db=-6.0206).content).samples
    _, stream = streamed(server, response_format="pcm", gain_db=-6.0206)
    np.testing.assert_allclose(halved, plain * 0.5, atol=2 / 32768)
    np.testing.assert_allclose(quieter, halved, atol=2 / 32768)
    assert stream == whole(server, response_format="pcm", gain_db=-6.0206).content


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"volume": 80}, "volume"),
        ({"normalize": True}, "normalize"),
        ({"stream_mode": "sentence"}, "stream_mode"),
        ({"rate": 1.2}, "rate"),
        ({"lang_code": "a"}, "lang_code"),
        ({"return_timestamps": True}, "return_timestamps"),
        ({"pitch": 2}, "pitch"),
        ({"gain_db": 3, "volume_multiplier": 2}, "volume_multiplier"),
        ({"gain_db": 40}, "gain_db"),
    ],
)
def test_fields_that_cannot_be_honoured_are_refused_by_name(
    server: LiveServer, fields: dict[str, Any], param: str
) -> None:
    response = whole(server, **fields)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_values_that_ask_for_the_default_and_unknown_fields_pass(server: LiveServer) -> None:
    response = whole(
        server, response_format="pcm", normalize=False, channels=1, return_timestamps=False, some_future_field="x"
    )
    assert response.status_code == 200
    assert response.content == whole(server, response_format="pcm").content
