"""The earlier server's per-request `stream_mode` on the two routes where it read it, the
sentence SSE and the raw PCM stream: `sentence` sends one chunk per sentence, `token`
frame-level chunks; any other value is a 400 naming the field."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from httpx_sse import connect_sse

from tests.support.audio import decode_pcm16
from tests.support.live_server import LiveServer

SENTENCES = ("The first sentence is here.", "A second one follows it.", "And the third ends it.")
BODY = {"model": "tts-1", "voice": "alloy", "input": " ".join(SENTENCES), "seed": 33}
SSE = "/v1/audio/speech/stream"
PCM = "/v1/audio/speech/stream/pcm"


def sse_pieces(server: LiveServer, **fields: Any) -> list[bytes]:
    """The sentence stream's audio events, decoded; it must end with [DONE]."""
    with server.client() as client, connect_sse(client, "POST", SSE, json={**BODY, **fields}) as source:
        assert source.response.status_code == 200, source.response.read()
        data = [event.data for event in source.iter_sse() if event.event not in ("finish", "words")]
    assert data[-1] == "[DONE]"
    return [base64.b64decode(d) for d in data[:-1]]


def pcm_stream(server: LiveServer, **fields: Any) -> bytes:
    with server.client() as client, client.stream("POST", PCM, json={**BODY, **fields}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["x-pcm-sample-rate"] == str(fields.get("sample_rate", 24000))
        return b"".join(response.iter_raw())


def test_sentence_mode_is_one_event_per_sentence_as_before(server: LiveServer) -> None:
    by_sentence = sse_pieces(server, stream_mode="sentence")
    assert len(by_sentence) == len(SENTENCES)
    assert all(decode_pcm16(piece).rms > 1e-3 for piece in by_sentence)
    assert by_sentence == sse_pieces(server)  # the route's own way, unchanged


@pytest.mark.parametrize("rate", [24000, 16000])
def test_token_mode_streams_frame_level_chunks_on_the_sentence_stream(server: LiveServer, rate: int) -> None:
    chunks = sse_pieces(server, stream_mode="token", sample_rate=rate)
    assert len(chunks) > len(SENTENCES)  # a few codec frames each, not a sentence each
    # The same audio the raw PCM stream sends in frame-level chunks (its default), through
    # one streaming resampler at other rates: its seams cannot click.
    joined = b"".join(chunks)
    assert joined == pcm_stream(server, sample_rate=rate) == pcm_stream(server, stream_mode="token", sample_rate=rate)
    assert decode_pcm16(joined, rate).rms > 1e-3
    # ...and not what the sentence mode speaks (each sentence generated on its own).
    assert joined != b"".join(sse_pieces(server, sample_rate=rate))


@pytest.mark.parametrize("rate", [24000, 16000])
def test_sentence_mode_on_the_raw_pcm_stream_speaks_sentence_by_sentence(server: LiveServer, rate: int) -> None:
    raw = pcm_stream(server, stream_mode="sentence", sample_rate=rate)
    # The sentence stream's sentences, raw: each generated on its own, resampled whole.
    assert raw == b"".join(sse_pieces(server, stream_mode="sentence", sample_rate=rate))
    assert raw != pcm_stream(server, sample_rate=rate)
    assert decode_pcm16(raw, rate).rms > 1e-3


def test_other_stream_modes_are_refused_by_name(server: LiveServer) -> None:
    with server.client() as client:
        for path, fields in (
            (SSE, {"stream_mode": "word"}),
            (PCM, {"stream_mode": "word"}),
            (PCM, {"stream_mode": 1}),
            # A whole file is not cut at all: the mode would be said and ignored.
            (PCM, {"stream_mode": "sentence", "stream": False}),
            # OpenAI's endpoint never had it: streaming there is stream and stream_format.
            ("/v1/audio/speech", {"stream_mode": "token"}),
        ):
            response = client.post(path, json={**BODY, **fields})
            assert response.status_code == 400, (path, fields, response.text)
            error = response.json()["error"]
            assert error["param"] == "stream_mode", (path, fields, error)
            assert error["type"] == "invalid_request_error"
