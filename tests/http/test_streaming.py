"""Streaming with real clients on the live server: chunked audio in every format, OpenAI's
SSE events, the sentence SSE endpoint, disconnects and failures mid-stream."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from httpx_sse import connect_sse

from tests.support.audio import decode_any, decode_pcm16
from tests.support.engine_control import inference_held, wait_until
from tests.support.live_server import LiveServer, live_server

THREE_SENTENCES = ("First sentence here.", "Second one follows.", "And the third ends it.")
THREE = " ".join(THREE_SENTENCES)
BODY = {"model": "tts-1", "voice": "alloy", "input": THREE, "seed": 21}
FRAME_SECONDS = 1920 / 24_000


def events(server: LiveServer, path: str, body: dict[str, Any]) -> list[str]:
    with server.client() as client, connect_sse(client, "POST", path, json=body) as source:
        assert source.response.status_code == 200
        assert source.response.headers["content-type"].startswith("text/event-stream")
        assert source.response.headers["x-accel-buffering"] == "no"
        # The sentence stream's `finish` event (after [DONE]) is test_finish_reasons' business.
        return [event.data for event in source.iter_sse() if event.event != "finish"]


def test_sentence_stream_sends_one_pcm_event_per_sentence_then_done(server: LiveServer) -> None:
    data = events(server, "/v1/audio/speech/stream", BODY)
    assert data[-1] == "[DONE]"
    sentences = [base64.b64decode(d) for d in data[:-1]]
    assert len(sentences) == 3
    # Sentence i is generated on its own with seed + i: what a request for that sentence alone
    # with that seed gives (the same codes; decoded in other chunks, so equal to float rounding).
    with server.client() as client:
        for i, (sentence, text) in enumerate(zip(sentences, THREE_SENTENCES, strict=True)):
            alone = client.post(
                "/v1/audio/speech",
                json={**BODY, "input": text, "seed": BODY["seed"] + i, "response_format": "pcm", "stream": False},
            )
            assert np.allclose(decode_pcm16(sentence).samples, decode_pcm16(alone.content).samples, atol=2 / 32768)


def test_openai_sse_deltas_then_done_with_usage(server: LiveServer) -> None:
    data = [
        json.loads(d)
        for d in events(server, "/v1/audio/speech", {**BODY, "stream_format": "sse", "response_format": "pcm"})
    ]
    assert [e["type"] for e in data[:-1]] == ["speech.audio.delta"] * (len(data) - 1)
    assert len(data) - 1 > 1  # the audio came in several chunks
    done = data[-1]
    assert done["type"] == "speech.audio.done"
    assert done["seed"] == BODY["seed"]
    usage = done["usage"]
    assert usage["input_tokens"] > 0
    assert usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    streamed = b"".join(base64.b64decode(e["audio"]) for e in data[:-1])
    # output tokens are codec frames: 1920 samples each
    assert decode_pcm16(streamed).samples.shape[0] == usage["output_tokens"] * 1920
    with server.client() as client:
        whole = client.post("/v1/audio/speech", json={**BODY, "response_format": "pcm", "stream": False})
    assert streamed == whole.content


def test_openai_sse_in_mp3_decodes(server: LiveServer) -> None:
    data = [
        json.loads(d)
        for d in events(server, "/v1/audio/speech", {**BODY, "stream_format": "sse", "response_format": "mp3"})
    ]
    assert data[-1]["type"] == "speech.audio.done"
    mp3 = b"".join(base64.b64decode(e["audio"]) for e in data if e["type"] == "speech.audio.delta")
    assert decode_any(mp3, "mp3").duration > 0.2


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm", "ogg"])
def test_streamed_bytes_decode_like_the_whole_file(server: LiveServer, fmt: str) -> None:
    with server.client() as client:
        whole = client.post("/v1/audio/speech", json={**BODY, "response_format": fmt, "stream": False})
        with client.stream("POST", "/v1/audio/speech", json={**BODY, "response_format": fmt}) as streamed:
            assert streamed.headers.get("transfer-encoding") == "chunked"
            assert "content-length" not in streamed.headers
            parts = list(streamed.iter_bytes())
    assert whole.status_code == 200
    assert "content-length" in whole.headers
    streamed_audio = decode_any(b"".join(parts), fmt)
    whole_audio = decode_any(whole.content, fmt)
    assert streamed_audio.sample_rate == whole_audio.sample_rate
    assert abs(streamed_audio.duration - whole_audio.duration) <= 2 * FRAME_SECONDS
    if fmt == "pcm":
        assert b"".join(parts) == whole.content
    if fmt == "wav":
        header = b"".join(parts)[:44]
        assert header[4:8] == b"\xff\xff\xff\xff"
        assert header[40:44] == b"\xff\xff\xff\xff"


def test_sdk_streaming_response_gets_audio_before_the_text_is_done(server: LiveServer, request_log) -> None:  # type: ignore[no-untyped-def]
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)
    text = " ".join(f"This is sentence number {i}." for i in range(6))
    chunks = 0
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="nova", input=text, response_format="pcm", extra_headers={"X-Request-ID": "stream-sdk-1"}
    ) as response:
        for chunk in response.iter_bytes():
            if chunk and chunks == 0:
                # Freeze the engine the moment the first audio is in hand: what it had
                # synthesised by then is fixed, and must not be the whole input.
                with inference_held(server):
                    done_at_first_audio = len(request_log.segments("stream-sdk-1"))
                    running = server.health()["models"]["custom_voice"]["active_sequences"]
            chunks += 1 if chunk else 0
    line = request_log.wait_for_request("stream-sdk-1")
    assert chunks > 1
    assert done_at_first_audio < line["segments"] == line["segments_done"]
    assert running >= 1
    assert line["first_chunk_frames"] == 2


def test_disconnect_stops_synthesis_and_frees_the_queue(server: LiveServer, request_log) -> None:  # type: ignore[no-untyped-def]
    text = " ".join(f"Sentence {i} goes on a while." for i in range(10))
    body = {**BODY, "input": text, "response_format": "pcm"}
    # Leaving the block after the first chunk closes the connection.
    with (
        server.client(headers={"X-Request-ID": "gone-1"}) as client,
        client.stream("POST", "/v1/audio/speech", json=body) as r,
    ):
        next(r.iter_raw())
    line = request_log.wait_for_request("gone-1")
    assert line["status"] == 499
    # The work stopped early (how early, in frames, is measured by bench/streaming.py) and its
    # row in the batch is free again.
    assert line["segments_done"] < line["segments"]
    assert server.health()["queue_depth"] == 0
    wait_until(lambda: server.health()["models"]["custom_voice"]["active_sequences"] == 0)
    with server.client() as client:
        assert client.post("/v1/audio/speech", json={**BODY, "response_format": "pcm"}).status_code == 200


def test_sse_disconnect_stops_synthesis(server: LiveServer, request_log) -> None:  # type: ignore[no-untyped-def]
    text = " ".join(f"Sentence {i} goes on a while." for i in range(10))
    with (
        server.client(headers={"X-Request-ID": "gone-sse"}) as client,
        connect_sse(client, "POST", "/v1/audio/speech/stream", json={**BODY, "input": text}) as source,
    ):
        next(source.iter_sse())
    line = request_log.wait_for_request("gone-sse")
    assert line["segments_done"] < line["segments"] == 10  # one segment per sentence here
    assert server.health()["queue_depth"] == 0


def test_bad_requests_fail_before_the_stream_opens(server: LiveServer) -> None:
    with server.client() as client:
        for path, extra in (("/v1/audio/speech/stream", {}), ("/v1/audio/speech", {"stream_format": "sse"})):
            response = client.post(path, json={**BODY, **extra, "voice": "nobody"})
            assert response.status_code == 400
            assert response.json()["error"]["param"] == "voice"


def test_failure_mid_stream_is_an_error_event(custom_voice_dir: Path) -> None:
    """After the first audio the status is sent; a failure then (here the deadline, passed while
    the inference thread is held) ends each kind of SSE stream with its error event."""
    text = " ".join(f"Sentence {i} goes on a while." for i in range(30))
    with (
        # Sentences of at most 3 frames: the first is done long before the deadline on any machine.
        live_server(model_id=str(custom_voice_dir), preload_model=True, request_timeout=3.0, max_new_tokens=4) as srv,
        srv.client() as client,
    ):
        for path, extra in (("/v1/audio/speech/stream", {}), ("/v1/audio/speech", {"stream_format": "sse"})):
            with connect_sse(client, "POST", path, json={**BODY, **extra, "input": text}) as source:
                assert source.response.status_code == 200
                received = source.iter_sse()
                first = next(received).data
                with inference_held(srv):
                    rest = [event.data for event in received]
            assert not first.startswith("[")
            if path == "/v1/audio/speech/stream":
                assert rest[-1].startswith("[ERROR]")
                assert "within 3 s" in rest[-1]
            else:
                assert json.loads(first)["type"] == "speech.audio.delta"
                last = json.loads(rest[-1])
                assert last["type"] == "speech.audio.error"
                assert last["error"]["code"] == "timeout"
            wait_until(lambda: srv.health()["queue_depth"] == 0)


def test_stream_has_no_cache_headers(server: LiveServer) -> None:
    with (
        httpx.Client(base_url=server.base_url, timeout=60) as client,
        client.stream("POST", "/v1/audio/speech", json={**BODY, "response_format": "mp3"}) as r,
    ):
        assert r.headers["cache-control"] == "no-cache"
        assert r.headers["x-accel-buffering"] == "no"
        r.read()


def test_every_response_carries_the_seed_that_reproduces_it(server: LiveServer, request_log) -> None:  # type: ignore[no-untyped-def]
    """An unseeded request gets a seed drawn for it: in the X-Seed header, in its log line and
    in the SSE done event; sending that seed back gives the same audio."""
    body = {"model": "tts-1", "voice": "alloy", "input": "Which seed was it?", "response_format": "pcm"}
    with server.client(headers={"Cache-Control": "no-store"}) as client:
        first = client.post("/v1/audio/speech", json=body, headers={"X-Request-ID": "seed-drawn"})
        assert first.status_code == 200
        seed = int(first.headers["X-Seed"])
        assert 0 <= seed <= 2**31 - 1
        again = client.post("/v1/audio/speech", json={**body, "seed": seed})
        assert again.headers["X-Seed"] == str(seed)
        assert again.content == first.content
        with client.stream("POST", "/v1/audio/speech", json={**body, "seed": seed, "stream": True}) as streamed:
            assert streamed.headers["X-Seed"] == str(seed)
            assert b"".join(streamed.iter_raw()) == first.content
    assert request_log.wait_for_request("seed-drawn")["seed"] == seed
    done = json.loads(events(server, "/v1/audio/speech", {**body, "stream_format": "sse"})[-1])
    assert isinstance(done["seed"], int)
