"""Word timestamps in every stream, on the dev checkpoints and the dev aligner: OpenAI's SSE
(`speech.audio.timestamps`), the sentence stream (`event: words`), the WebSocket (`words`
events for utterances and LLM text streams), vLLM-Omni's audio.done; a failing aligner keeps
the audio; the aligner unloads when idle; timestamps off touch nothing."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse
from websockets.sync.client import ClientConnection, connect

from server.text.pieces import split_pieces
from tests.support.audio import decode_pcm16
from tests.support.engine_control import wait_until
from tests.support.live_server import LiveServer, RecordCollector, dev_settings, live_server
from tests.support.ws import RECEIVE_TIMEOUT, send, ws_connect
from tests.timestamps.conftest import TEXT, check_segments, expected_words, sentences_of

SPEECH = "/v1/audio/speech"
BYTES_PER_SECOND = 24_000 * 2  # int16 mono at 24 kHz


def speech_body(**fields: Any) -> dict[str, Any]:
    return {"input": TEXT, "voice": "Vivian", "response_format": "pcm", "seed": 5, **fields}


def openai_events(client: httpx.Client, **fields: Any) -> list[dict[str, Any]]:
    with connect_sse(client, "POST", SPEECH, json=speech_body(stream_format="sse", **fields)) as source:
        assert source.response.status_code == 200
        return [json.loads(event.data) for event in source.iter_sse()]


def aligned_count(server: LiveServer) -> int:
    count: int = server.health()["aligner"]["aligned"]
    return count


def test_openai_sse_carries_each_segments_words_after_its_audio(timed_server: LiveServer) -> None:
    with timed_server.client() as client:
        events = openai_events(client, timestamps=True)
    audio = b""
    segments = []
    for event in events[:-1]:
        if event["type"] == "speech.audio.delta":
            audio += base64.b64decode(event["audio"])
            continue
        assert event["type"] == "speech.audio.timestamps", event
        assert len(audio) >= round(event["end_time"] * 24_000) * 2 - 2  # after the segment's last delta
        segments.append({k: v for k, v in event.items() if k != "type"})
    assert events[-1]["type"] == "speech.audio.done" and events[-1]["finish_reason"] == "stop"
    check_segments(segments, split_pieces(TEXT), len(audio) / BYTES_PER_SECOND)


def test_timestamps_off_change_nothing_and_call_no_aligner(timed_server: LiveServer) -> None:
    with timed_server.client() as client:
        openai_events(client, timestamps=True)  # the aligner is loaded and has worked
        before = aligned_count(timed_server)
        timed = openai_events(client, timestamps=True)
        plain = openai_events(client)
        whole = client.post(SPEECH, json=speech_body(stream=False))
    assert aligned_count(timed_server) == before + len(split_pieces(TEXT))  # the plain ones added none
    assert {event["type"] for event in plain} == {"speech.audio.delta", "speech.audio.done"}
    timed_audio = b"".join(base64.b64decode(e["audio"]) for e in timed if e["type"] == "speech.audio.delta")
    plain_audio = b"".join(base64.b64decode(e["audio"]) for e in plain if e["type"] == "speech.audio.delta")
    assert timed_audio == plain_audio == whole.content  # the same seed: the same audio


@pytest.mark.parametrize("stream_mode", [None, "token"])
def test_the_sentence_stream_sends_words_after_each_sentence(timed_server: LiveServer, stream_mode: str | None) -> None:
    # With stream_mode token its events are frame-level chunks, and the words come after
    # each piece the text was cut into (sentences joined), as on OpenAI's SSE.
    mode = {} if stream_mode is None else {"stream_mode": stream_mode}
    with (
        timed_server.client() as client,
        connect_sse(client, "POST", f"{SPEECH}/stream", json=speech_body(timestamps=True, **mode)) as source,
    ):
        events = list(source.iter_sse())
    audio = b""
    segments = []
    for event in events:
        if event.event == "words":
            segment = json.loads(event.data)
            assert len(audio) >= round(segment["end_time"] * 24_000) * 2 - 2
            segments.append(segment)
        elif event.data not in ("[DONE]",) and event.event == "message":
            audio += base64.b64decode(event.data)
    assert [e.data for e in events if e.event == "message"][-1] == "[DONE]"
    assert events[-1].event == "finish"
    pieces = split_pieces(TEXT) if stream_mode == "token" else sentences_of(TEXT)
    check_segments(segments, pieces, len(audio) / BYTES_PER_SECOND)


def receive_timed(socket: ClientConnection) -> tuple[bytes, list[tuple[int, dict[str, Any]]]]:
    """Audio and events up to done; each event with the audio bytes received before it."""
    audio = b""
    events: list[tuple[int, dict[str, Any]]] = []
    while True:
        message = socket.recv(timeout=RECEIVE_TIMEOUT)
        if isinstance(message, bytes):
            audio += message
            continue
        event = json.loads(message)
        events.append((len(audio), event))
        if event["event"] in ("done", "error"):
            return audio, events


def words_of(events: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    segments = []
    for received, event in events:
        if event["event"] == "words":
            assert received >= round(event["end_time"] * 24_000) * 2 - 2  # its audio came first
            segments.append({k: v for k, v in event.items() if k != "event"})
    return segments


def test_a_websocket_utterance_gets_words_before_done(timed_server: LiveServer) -> None:
    with ws_connect(timed_server) as socket:
        send(socket, {"input": TEXT, "voice": "Vivian", "seed": 5, "timestamps": True})
        audio, events = receive_timed(socket)
    assert events[-1][1]["event"] == "done"
    check_segments(words_of(events), split_pieces(TEXT), len(audio) / BYTES_PER_SECOND)


def test_a_websocket_text_stream_times_its_sentences_on_one_clock(timed_server: LiveServer) -> None:
    with ws_connect(timed_server) as socket:
        send(socket, {"type": "start", "voice": "Vivian", "seed": 5, "timestamps": True})
        for cut in range(0, len(TEXT), 6):  # an LLM's deltas, cut mid-word
            send(socket, {"type": "delta", "text": TEXT[cut : cut + 6]})
        send(socket, {"type": "flush"})
        audio, events = receive_timed(socket)
    spoken = [event["text"] for _, event in events if event["event"] == "sentence"]
    assert events[-1][1]["event"] == "done" and len(spoken) == 3
    # Numbered across the stream, each sentence starting where the one before ended.
    check_segments(words_of(events), spoken, len(audio) / BYTES_PER_SECOND)
    assert expected_words(spoken) == expected_words([TEXT])


def test_a_websocket_request_for_timestamps_without_the_aligner_gets_an_error_event(server: LiveServer) -> None:
    with ws_connect(server) as socket:
        send(socket, {"input": "Hello.", "voice": "Vivian", "timestamps": True})
        _, events = receive_timed(socket)
        send(socket, {"type": "start", "voice": "Vivian", "timestamps": True})
        _, more = receive_timed(socket)
    for _, event in (*events, *more):
        assert event["event"] == "error" and event["code"] == "timestamps_unavailable"


@pytest.fixture
def omni_socket(timed_server: LiveServer) -> Iterator[ClientConnection]:
    url = f"ws://127.0.0.1:{timed_server.port}/v1/audio/speech/stream"
    with connect(url, proxy=None, open_timeout=30, max_size=16 * 1024 * 1024) as socket:
        yield socket


def test_vllm_omni_audio_done_carries_each_sentences_words(omni_socket: ClientConnection) -> None:
    config = {"type": "session.config", "voice": "Vivian", "response_format": "pcm", "stream_audio": True}
    send(omni_socket, {**config, "timestamp_type": "word", "timestamp_transport_strategy": "sync"})
    send(omni_socket, {"type": "input.text", "text": TEXT})
    send(omni_socket, {"type": "input.done"})
    sentences: list[tuple[str, bytes, dict[str, Any]]] = []
    audio = b""
    text = ""
    while True:
        message = omni_socket.recv(timeout=RECEIVE_TIMEOUT)
        if isinstance(message, bytes):
            audio += message
            continue
        event = json.loads(message)
        if event["type"] == "audio.start":
            audio, text = b"", event["sentence_text"]
        elif event["type"] == "audio.done":
            sentences.append((text, audio, event))
        elif event["type"] == "session.done":
            break
    assert [text for text, _, _ in sentences] == list(sentences_of(TEXT))
    for text, audio, done in sentences:
        info = done["timestamp_info"]
        assert "reason" not in info, info
        alignment = info["word_alignment"]
        assert alignment["words"] == expected_words([text])
        times = [
            t
            for pair in zip(alignment["word_start_times_seconds"], alignment["word_end_times_seconds"], strict=True)
            for t in pair
        ]
        assert times == sorted(times) and times[0] >= 0 and times[-1] <= len(audio) / BYTES_PER_SECOND + 0.0015


@pytest.fixture(scope="module")
def broken_aligner_server(
    custom_voice_dir: Path, base_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    settings = dev_settings(custom_voice_dir, base_dir, tmp_path_factory.mktemp("voices"))
    missing = tmp_path_factory.mktemp("aligner") / "not-a-checkpoint"
    with live_server(**settings, aligner_model_id=str(missing)) as running:
        yield running


def test_an_aligner_that_fails_keeps_the_audio_and_says_why(
    broken_aligner_server: LiveServer, request_log: RecordCollector
) -> None:
    with broken_aligner_server.client() as client:
        whole = client.post(
            "/v1/audio/speech/captioned", json={**speech_body(), "stream": False, "timestamps_format": "vtt"}
        )
        events = openai_events(client, timestamps=True)
    assert whole.status_code == 200
    result = whole.json()
    assert decode_pcm16(base64.b64decode(result["audio"])).rms > 1e-3
    assert result["timestamps"] == [] and len(result["segments"]) == 3
    assert all("could not be loaded" in segment["error"] for segment in result["segments"])
    assert result["subtitles"].startswith("WEBVTT") and result["subtitles"].count(" --> ") == 3
    timestamps = [e for e in events if e["type"] == "speech.audio.timestamps"]
    assert timestamps and all(e["words"] == [] and "could not be loaded" in e["error"] for e in timestamps)
    assert any(e["type"] == "speech.audio.delta" for e in events) and events[-1]["type"] == "speech.audio.done"
    aligner = broken_aligner_server.health()["aligner"]
    assert aligner["status"] == "unloaded" and "not-a-checkpoint" in aligner["last_error"] and aligner["failed"] >= 1


def test_the_aligner_unloads_when_idle_and_loads_again(
    custom_voice_dir: Path, base_dir: Path, aligner_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = {**dev_settings(custom_voice_dir, base_dir, tmp_path_factory.mktemp("voices")), "idle_timeout": 0.5}
    with live_server(**settings, aligner_model_id=str(aligner_checkpoint)) as running, running.client() as client:
        for _ in range(2):
            response = client.post("/v1/audio/speech/captioned", json={**speech_body(input="Hello."), "stream": False})
            assert response.status_code == 200 and response.json()["timestamps"]
            wait_until(lambda: running.health()["aligner"]["status"] == "unloaded")
        aligner = running.health()["aligner"]
        assert (aligner["load_count"], aligner["unload_count"]) == (2, 2)
