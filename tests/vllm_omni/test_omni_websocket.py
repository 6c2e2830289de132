"""vLLM-Omni's speech WebSocket on the live server, driven by a client that sends what
LiveKit's Qwen3-TTS plugin (livekit-plugins-baseten, qwen3_tts.py) sends: its
`Authorization: Api-Key` header, its session.config, an LLM's deltas as input.text,
input.done as a flush, an empty input.done as its keepalive, session.close at the end."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosedOK, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from server.text import split_sentences
from tests.support.audio import decode_pcm16, decode_soundfile
from tests.support.engine_control import inference_held, wait_until
from tests.support.live_server import LiveServer, RecordCollector, live_server
from tests.support.reference import encode_soundfile, tone

KEY = "omni-test-key"
PATH = "/v1/audio/speech/stream"
TIMEOUT = 120.0
ANSWER = "Hello there, my friend. This is the second sentence. And here is a third one."
# What the plugin builds for a CustomVoice deployment with word timestamps on.
PLUGIN_CONFIG: dict[str, Any] = {
    "type": "session.config",
    "task_type": "CustomVoice",
    "response_format": "pcm",
    "stream_audio": True,
    "speed": 1.0,
    "voice": "Ryan",
    "language": "English",
    "max_new_tokens": 32,
    "timestamp_type": "word",
    "timestamp_transport_strategy": "sync",
}


@pytest.fixture(scope="module")
def omni_server(
    custom_voice_dir: Path, base_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    with live_server(
        model_id=str(custom_voice_dir),
        clone_model_id=str(base_dir),
        voices_dir=tmp_path_factory.mktemp("voices"),
        idle_timeout=0,
        max_new_tokens=32,
        api_keys=KEY,
    ) as server:
        yield server


@contextmanager
def plugin_socket(server: LiveServer, authorization: str = f"Api-Key {KEY}") -> Iterator[ClientConnection]:
    url = f"ws://127.0.0.1:{server.port}{PATH}"
    headers = {"Authorization": authorization}
    with connect(url, proxy=None, open_timeout=30, additional_headers=headers, max_size=16 * 1024 * 1024) as socket:
        yield socket


def send(socket: ClientConnection, message: dict[str, Any]) -> None:
    socket.send(json.dumps(message))


def event(socket: ClientConnection) -> dict[str, Any]:
    message = socket.recv(timeout=TIMEOUT)
    assert isinstance(message, str), "expected an event, got audio"
    result: dict[str, Any] = json.loads(message)
    return result


@dataclass
class Sentence:
    start: dict[str, Any]
    audio: bytes = b""
    done: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)


def read_sentence(socket: ClientConnection, start: dict[str, Any] | None = None) -> Sentence:
    """One sentence: audio.start (read here unless given), its audio, audio.done."""
    start = start or event(socket)
    assert start["type"] == "audio.start", start
    sentence = Sentence(start)
    while True:
        message = socket.recv(timeout=TIMEOUT)
        if isinstance(message, bytes):
            sentence.audio += message
            continue
        answer = json.loads(message)
        if answer["type"] == "error":
            sentence.errors.append(answer)
            continue
        assert answer["type"] == "audio.done", answer
        sentence.done = answer
        return sentence


def read_utterance(socket: ClientConnection) -> tuple[list[Sentence], dict[str, Any]]:
    """Sentences up to session.done."""
    sentences = []
    while (answer := event(socket))["type"] != "session.done":
        sentences.append(read_sentence(socket, answer))
    return sentences, answer


def test_a_livekit_session_speaks_an_llms_deltas_and_ends_cleanly(
    omni_server: LiveServer, request_log: RecordCollector
) -> None:
    first_end = ANSWER.index("friend.") + len("friend. Th")
    with plugin_socket(omni_server) as socket:
        send(socket, PLUGIN_CONFIG)
        for cut in range(0, first_end, 7):  # deltas cut mid-word, as an LLM streams them
            send(socket, {"type": "input.text", "text": ANSWER[cut : min(cut + 7, first_end)]})
        # The first sentence is spoken before the rest of the answer exists.
        early = read_sentence(socket)
        for cut in range(first_end, len(ANSWER), 5):
            send(socket, {"type": "input.text", "text": ANSWER[cut : cut + 5]})
        send(socket, {"type": "input.done"})
        later, session_done = read_utterance(socket)
        # The plugin's keepalive: an empty flush, answered by session.done alone.
        send(socket, {"type": "input.done"})
        keepalive = event(socket)
        send(socket, {"type": "session.close"})
        with pytest.raises(ConnectionClosedOK):
            socket.recv(timeout=TIMEOUT)

    sentences = [early, *later]
    assert [s.start["sentence_text"] for s in sentences] == split_sentences(ANSWER)
    assert session_done == {"type": "session.done", "utterance_index": 0, "total_sentences": 3}
    assert keepalive == {"type": "session.done", "utterance_index": 1, "total_sentences": 0}
    for index, sentence in enumerate(sentences):
        assert sentence.start["sample_rate"] == 24_000 and sentence.start["sentence_index"] == index
        assert sentence.errors == [] and sentence.done["error"] is False
        assert sentence.done["total_bytes"] == len(sentence.audio)
        assert decode_pcm16(sentence.audio).rms > 1e-3
        info = sentence.done["timestamp_info"]
        assert info["word_alignment"]["words"] == [] and "aligner" in info["reason"]
    lines = request_log.wait_for_requests(3, endpoint="/v1/audio/speech/stream (vllm-omni websocket)")
    assert [line["status"] for line in lines] == [200, 200, 200]


def test_bearer_and_query_keys_work_and_a_missing_key_is_refused(omni_server: LiveServer) -> None:
    for authorization in (f"Bearer {KEY}", f"api-key {KEY}"):
        with plugin_socket(omni_server, authorization) as socket:
            send(socket, {**PLUGIN_CONFIG, "stream_audio": False, "response_format": "wav"})
            send(socket, {"type": "input.text", "text": "Short."})
            send(socket, {"type": "input.done"})
            [sentence], _ = read_utterance(socket)
            assert decode_soundfile(sentence.audio).duration > 0  # one whole wav per sentence
    for authorization in ("", f"Api-Key wrong-{KEY}", f"Basic {KEY}"):
        with pytest.raises(InvalidStatus) as refused, plugin_socket(omni_server, authorization):
            pass
        assert refused.value.response.status_code == 401


def test_errors_are_events_and_the_connection_stays_usable(omni_server: LiveServer) -> None:
    reference = base64.b64encode(encode_soundfile(tone(2.0), 24_000, "wav")).decode()
    bad_configs = [
        ({"voice": "nobody"}, "voice"),
        ({"task_type": "VoiceDesign", "instructions": "warm"}, "task_type"),
        ({"split_granularity": "clause"}, "split_granularity"),
        ({"text_input_mode": "buffered"}, "text_input_mode"),  # unknown fields are named
        ({"word_timestamps": True}, "word_timestamps"),
        ({"response_format": "mp3"}, "stream_audio"),
        ({"task_type": "Base", "ref_audio": "https://example.com/me.wav"}, "ref_audio"),
    ]
    with plugin_socket(omni_server) as socket:
        send(socket, {"type": "input.text", "text": "Before any config."})
        errors = [event(socket)]
        for change, _ in bad_configs:
            send(socket, {**PLUGIN_CONFIG, **change})
            errors.append(event(socket))
        send(socket, {"type": "voice.list"})
        errors.append(event(socket))
        socket.send(b"binary")
        errors.append(event(socket))
        # Inline cloning as the plugin does it: bare base64 of the file, with its transcript.
        send(
            socket,
            {**PLUGIN_CONFIG, "task_type": "Base", "voice": "mine", "ref_audio": reference, "ref_text": "A tone."},
        )
        send(socket, {"type": "input.text", "text": "Now it works."})
        send(socket, {"type": "input.done"})
        [sentence], done = read_utterance(socket)
    assert all(e["type"] == "error" for e in errors)
    assert [e["param"] for e in errors[: len(bad_configs) + 1]] == ["type", *(p for _, p in bad_configs)]
    assert "never fetched" in errors[len(bad_configs)]["message"]
    assert "voice.list" in errors[-2]["message"] and "text frames" in errors[-1]["message"]
    assert decode_pcm16(sentence.audio).rms > 1e-3 and done["total_sentences"] == 1


def test_a_client_that_leaves_frees_its_job(omni_server: LiveServer, request_log: RecordCollector) -> None:
    engine = omni_server.engine
    with inference_held(omni_server):
        with plugin_socket(omni_server) as socket:
            send(socket, PLUGIN_CONFIG)
            send(socket, {"type": "input.text", "text": "Nobody will hear this."})
            send(socket, {"type": "input.done"})
            wait_until(lambda: engine.depth == 1)
        # Gone while the inference thread is still held: the job never ran and is freed.
        wait_until(lambda: engine.depth == 0)
    [line] = request_log.wait_for_requests(1, endpoint="/v1/audio/speech/stream (vllm-omni websocket)")
    assert line["status"] == 499


def test_an_answer_written_at_once_keeps_the_keepalive(custom_voice_dir: Path) -> None:
    """An LLM's whole answer sent as deltas before any audio is read: every message is read as
    it arrives (server/web/inbox.py), so the keepalive's pongs are read however much waits
    to be spoken, and the session ends cleanly instead of with 1011 (a shortened keepalive: a
    server that stopped reading would miss a pong within seconds)."""
    sentences = [f"Sentence {i} is here." for i in range(200)]
    words = " ".join(sentences).split(" ")
    with (
        live_server(
            model_id=str(custom_voice_dir),
            idle_timeout=0,
            max_new_tokens=3,
            api_keys=KEY,
            ws_ping_interval=0.5,
            ws_ping_timeout=2,
        ) as server,
        plugin_socket(server) as socket,
    ):
        send(socket, {**PLUGIN_CONFIG, "max_new_tokens": 3, "timestamp_type": "none"})
        for word in words:
            send(socket, {"type": "input.text", "text": word + " "})
        send(socket, {"type": "input.done"})
        spoken, session_done = read_utterance(socket)
    assert session_done["total_sentences"] == len(sentences) == len(spoken)
    assert all(not sentence.errors for sentence in spoken)


def speak_one(server: LiveServer, **fields: Any) -> tuple[Sentence, np.ndarray]:
    """One seeded sentence on a fresh session with `fields` added to its config; its audio."""
    config = {**PLUGIN_CONFIG, "timestamp_type": "none", "seed": 11, **fields}
    with plugin_socket(server) as socket:
        send(socket, config)
        send(socket, {"type": "input.text", "text": "Hello there, my friend."})
        send(socket, {"type": "input.done"})
        sentences, _ = read_utterance(socket)
    assert len(sentences) == 1 and not sentences[0].errors
    return sentences[0], decode_pcm16(sentences[0].audio).samples


def http_pcm(server: LiveServer, **fields: Any) -> np.ndarray:
    """The same sentence, seed and voice over HTTP, as raw PCM."""
    body = {"model": "tts-1", "voice": "Ryan", "language": "English", "response_format": "pcm"}
    body |= {"input": "Hello there, my friend.", "seed": 11, "max_new_tokens": 32, **fields}
    with server.client(headers={"Authorization": f"Bearer {KEY}"}) as client:
        response = client.post("/v1/audio/speech", json=body)
    assert response.status_code == 200, response.text
    return decode_pcm16(response.content).samples


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64))))


def test_a_session_maps_sample_rate_and_gain_as_http_does(omni_server: LiveServer) -> None:
    """session.config's output fields go through the same mapping as the HTTP body's: the
    audio comes at the asked rate, and a gain scales it as HTTP's gain does."""
    plain, base = speak_one(omni_server)
    slow, resampled = speak_one(omni_server, sample_rate=16_000)
    assert slow.start["sample_rate"] == 16_000 and plain.start["sample_rate"] == 24_000
    assert abs(resampled.size - base.size * 16_000 / 24_000) <= 64  # the same speech, at 16 kHz
    _, softer = speak_one(omni_server, gain_db=-12.0)
    _, louder = speak_one(omni_server, volume_multiplier=2.0)
    assert softer.size == base.size == louder.size
    assert rms(softer) == pytest.approx(rms(base) * 10 ** (-12 / 20), rel=0.02)
    assert rms(louder) > rms(base) * 1.5  # (clipped at full scale where it peaks)
    # HTTP answers the same seed, rate and gain with the same samples.
    np.testing.assert_array_equal(http_pcm(omni_server, gain_db=-12.0), softer)
    np.testing.assert_array_equal(http_pcm(omni_server, sample_rate=16_000), resampled)


def test_a_session_sends_one_file_at_the_asked_rate(omni_server: LiveServer) -> None:
    """Without stream_audio the sentence is one file, resampled and headed with the asked rate."""
    sentence, _ = speak_one(omni_server, response_format="wav", stream_audio=False, sample_rate=16_000)
    assert sentence.start["sample_rate"] == 16_000
    assert decode_soundfile(sentence.audio).sample_rate == 16_000


def test_a_pause_tag_in_a_session_is_the_http_silence(omni_server: LiveServer) -> None:
    """An LLM's text with a pause tag cut across its deltas: the sentence is the HTTP audio
    for the same text and seed, with its exact silence."""
    text = "Hello there,[pause:0.4s] my friend."
    config = {**PLUGIN_CONFIG, "timestamp_type": "none", "seed": 11}
    with plugin_socket(omni_server) as socket:
        send(socket, config)
        for delta in ("Hello there,[pau", "se:0.4s] my fr", "iend."):
            send(socket, {"type": "input.text", "text": delta})
        send(socket, {"type": "input.done"})
        sentences, _ = read_utterance(socket)
    assert len(sentences) == 1 and not sentences[0].errors
    spoken = decode_pcm16(sentences[0].audio).samples
    assert np.count_nonzero(spoken == 0) >= 0.4 * 24_000
    np.testing.assert_array_equal(spoken, http_pcm(omni_server, input=text))


def test_a_sessions_pronunciations_are_read_and_a_bad_entry_is_named(omni_server: LiveServer) -> None:
    """An entry whose written text is cut across deltas is read as its alias: the sentence is
    the HTTP audio for the alias written in place, same seed. A malformed entry is an error
    naming the field, and the session stays usable."""
    entries = [{"text": "Hello there", "alias": "Good morning"}]
    config = {**PLUGIN_CONFIG, "timestamp_type": "none", "seed": 11}
    with plugin_socket(omni_server) as socket:
        send(socket, {**config, "pronunciations": [{"text": "Hello"}]})
        missing_alias = event(socket)
        send(socket, {**config, "pronunciations": [{"text": "Hello", "alias": "Hi", "language": "Klingon"}]})
        unknown_language = event(socket)
        send(socket, {**config, "pronunciations": entries})
        for delta in ("Hel", "lo the", "re, my friend."):
            send(socket, {"type": "input.text", "text": delta})
        send(socket, {"type": "input.done"})
        sentences, _ = read_utterance(socket)
    assert missing_alias["type"] == "error" and missing_alias["param"] == "pronunciations", missing_alias
    assert "alias" in missing_alias["message"]
    assert unknown_language["type"] == "error" and unknown_language["param"] == "pronunciations[0].language"
    assert len(sentences) == 1 and not sentences[0].errors
    assert sentences[0].start["sentence_text"] == "Hello there, my friend."  # the written text
    spoken = decode_pcm16(sentences[0].audio).samples
    np.testing.assert_array_equal(spoken, http_pcm(omni_server, input="Good morning, my friend."))
    np.testing.assert_array_equal(spoken, http_pcm(omni_server, pronunciations=entries))
    assert not np.array_equal(spoken, http_pcm(omni_server))  # the written text sounds otherwise
