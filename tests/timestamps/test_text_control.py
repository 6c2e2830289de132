"""Pauses, SSML and their timestamps through the live server (the package's timed server):
the silence is exact to the sample and lies where the text put it, each segment is the audio
it would be alone with its seed, streams equal whole files, and word times follow the pauses."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from tests.support.audio import decode_pcm16
from tests.support.live_server import LiveServer

RATE = 24_000


def speech(server: LiveServer, text: str, seed: int, **fields: Any) -> bytes:
    body = {"input": text, "voice": "Vivian", "response_format": "pcm", "seed": seed, "stream": False, **fields}
    with server.client() as client:
        response = client.post("/v1/audio/speech", json=body)
    assert response.status_code == 200, response.text
    return response.content


def zeros(seconds: float) -> bytes:
    return bytes(2 * round(seconds * RATE))


def assert_composed(audio: bytes, *pieces: bytes) -> None:
    """`audio` is `pieces` end to end: silences (all zero bytes) exactly, speech to within
    one 16-bit step (a later segment of one job is decoded in other chunk sizes than alone)."""
    got = np.frombuffer(audio, dtype="<i2").astype(np.int32)
    assert got.shape[0] * 2 == sum(len(piece) for piece in pieces)
    at = 0
    for piece in pieces:
        want = np.frombuffer(piece, dtype="<i2").astype(np.int32)
        part = got[at : at + want.shape[0]]
        if not piece.strip(b"\0"):
            assert not part.any(), f"silence at sample {at} is not exact"
        else:
            assert want.any() and np.abs(part - want).max() <= 1
        at += want.shape[0]


def longest_zero_run(samples: np.ndarray) -> int:
    best = run = 0
    for value in samples:
        run = run + 1 if value == 0 else 0
        best = max(best, run)
    return best


def test_a_pause_is_exact_silence_between_the_segments_it_separates(timed_server: LiveServer) -> None:
    first = speech(timed_server, "The first part is here.", 21)
    second = speech(timed_server, "And then the second part.", 22)
    paused = speech(timed_server, "The first part is here.[pause:0.7s]And then the second part.", 21)
    # Segment i draws seed + i: each half is the audio it is alone, the gap 0.7 s of zeros.
    assert_composed(paused, first, zeros(0.7), second)
    assert longest_zero_run(decode_pcm16(paused).samples) >= 0.7 * RATE
    assert speech(timed_server, "The first part is here.[pause:700ms] And then the second part.", 21) == paused
    ssml = '<speak>The first part is here.<break time="700ms"/>And then the second part.</speak>'
    assert speech(timed_server, ssml, 21) == paused


def test_pauses_open_close_and_repeat(timed_server: LiveServer) -> None:
    hello, bye = speech(timed_server, "Hello there.", 4), speech(timed_server, "Goodbye now.", 5)
    text = "[pause:0.2s]Hello there.[pause:100ms][pause:0.1s] [pause:0.1s]Goodbye now.[pause:0.3s]"
    assert_composed(speech(timed_server, text, 4), zeros(0.2), hello, zeros(0.3), bye, zeros(0.3))


def test_pauses_alone_are_silence(timed_server: LiveServer) -> None:
    assert speech(timed_server, "[pause:1s][pause:250ms]", 3) == zeros(1.25)


def test_streamed_pauses_equal_the_whole_file(timed_server: LiveServer) -> None:
    text = "[pause:0.1s]One short line.[pause:0.5s]Another short line.[pause:0.2s]"
    whole = speech(timed_server, text, 8)
    with timed_server.client() as client:
        body = {"input": text, "voice": "Vivian", "response_format": "pcm", "seed": 8, "stream": True}
        streamed = b"".join(client.post("/v1/audio/speech", json=body).iter_bytes())
    assert streamed == whole


def test_a_pause_is_exact_at_another_sample_rate_too(timed_server: LiveServer) -> None:
    text = "Hello there.[pause:0.7s]Goodbye now.[pause:0.25s]"
    for rate in (16_000, 44_100):
        audio = speech(timed_server, text, 4, sample_rate=rate)
        samples = decode_pcm16(audio, rate).samples
        # The resampler's filter is flushed at the silence and started afresh after it.
        assert longest_zero_run(samples) == round(0.7 * rate)
        assert not samples[-round(0.25 * rate) :].any() and samples[-round(0.25 * rate) - 1] != 0
        with timed_server.client() as client:
            body = {"input": text, "voice": "Vivian", "response_format": "pcm", "seed": 4, "sample_rate": rate}
            assert b"".join(client.post("/v1/audio/speech", json=body).iter_bytes()) == audio


def test_two_voices_speak_their_segments_in_order(timed_server: LiveServer) -> None:
    vivian = speech(timed_server, "Hello from the first voice.", 31)
    ryan = speech(timed_server, "And hello from the second.", 32, voice="Ryan")
    ssml = (
        "<speak><voice name='Vivian'>Hello from the first voice.</voice>"
        "<voice name='Ryan'>And hello from the second.</voice></speak>"
    )
    assert vivian != speech(timed_server, "Hello from the first voice.", 31, voice="Ryan")
    assert_composed(speech(timed_server, ssml, 31, voice="alloy"), vivian, ryan)


def test_unsupported_ssml_is_refused_by_name(timed_server: LiveServer) -> None:
    with timed_server.client() as client:
        for element in ("phoneme", "audio", "emphasis", "blink"):
            body = {"input": f"<speak>Hi <{element}>there</{element}>.</speak>", "voice": "Vivian"}
            response = client.post("/v1/audio/speech", json=body)
            assert response.status_code == 400
            assert f"<{element}>" in response.json()["error"]["message"]
        bomb = '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaa">]><speak>&a;</speak>'
        deep = "<speak>" + "<s>" * 1000 + "x" + "</s>" * 1000 + "</speak>"
        for text in (bomb, deep, "Hi [pause:soon] there"):
            response = client.post("/v1/audio/speech", json={"input": text, "voice": "Vivian"})
            assert response.status_code == 400, text
            assert response.json()["error"]["param"] == "input"


def captioned(server: LiveServer, text: str, seed: int) -> dict[str, Any]:
    body = {"input": text, "voice": "Vivian", "response_format": "pcm", "seed": seed, "stream": False}
    with server.client() as client:
        response = client.post("/v1/audio/speech/captioned", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_timestamps_move_past_pauses_and_report_written_words(timed_server: LiveServer) -> None:
    import base64

    text = (
        '<speak>Visit the <sub alias="World Wide Web">WWW</sub> today.<break time="700ms"/>'
        '<mark name="second"/>Call <say-as interpret-as="telephone">555 0123</say-as> now.</speak>'
    )
    answer = captioned(timed_server, text, 12)
    audio = len(base64.b64decode(answer["audio"])) / 2 / RATE
    segments = answer["segments"]
    assert [s["text"] for s in segments] == ["Visit the WWW today.", "Call 555 0123 now."]
    assert segments[0]["spoken_text"] == "Visit the World Wide Web today."
    assert segments[1]["spoken_text"] == "Call five five five, zero one two three now."
    assert segments[1]["start_time"] >= segments[0]["end_time"] + 0.7 - 0.0015
    words = [w["word"] for w in answer["timestamps"]]
    assert "WWW" in words and "World" not in words
    assert segments[1]["marks"] == [{"name": "second", "time": segments[1]["words"][0]["start_time"]}]
    times = [t for w in answer["timestamps"] for t in (w["start_time"], w["end_time"])]
    assert all(a <= b for a, b in itertools.pairwise(times))
    assert times[-1] <= audio + 0.0015


def test_a_pronunciation_is_read_as_its_alias_and_shown_as_written(timed_server: LiveServer) -> None:
    entries = [{"text": "Nguyen", "alias": "Win"}, {"text": "Win", "alias": "never read"}]
    alias = speech(timed_server, "Doctor Win is here.", 41)
    assert speech(timed_server, "Doctor Nguyen is here.", 41, pronunciations=entries) == alias
    body = {"input": "Doctor Nguyen is here.", "voice": "Vivian", "seed": 41, "stream": False}
    with timed_server.client() as client:
        answer = client.post("/v1/audio/speech/captioned", json={**body, "pronunciations": entries}).json()
        refused = client.post("/v1/audio/speech", json={**body, "pronunciations": [{"text": "a", "phoneme": "x"}]})
    assert refused.status_code == 400
    segment = answer["segments"][0]
    assert (segment["text"], segment["spoken_text"]) == ("Doctor Nguyen is here.", "Doctor Win is here.")
    assert "Nguyen" in [w["word"] for w in segment["words"]]


def test_a_captioned_stream_with_pauses_is_the_whole_answer(timed_server: LiveServer) -> None:
    import base64

    import orjson

    text = "[pause:0.2s]Hello there.[pause:0.5s]Goodbye now.[pause:0.1s]"
    whole = captioned(timed_server, text, 9)
    body = {"input": text, "voice": "Vivian", "response_format": "pcm", "seed": 9, "stream": True}
    with timed_server.client() as client:
        lines = [orjson.loads(line) for line in client.post("/v1/audio/speech/captioned", json=body).iter_lines()]
    assert lines[-1]["done"] is True
    audio = b"".join(base64.b64decode(line["audio"]) for line in lines if line.get("audio"))
    assert audio == base64.b64decode(whole["audio"])
    assert audio.startswith(zeros(0.2)) and audio.endswith(zeros(0.1))
    streamed = [line for line in lines if "segment" in line]
    assert [(s["start_time"], s["end_time"]) for s in streamed] == [
        (s["start_time"], s["end_time"]) for s in whole["segments"]
    ]
    assert whole["segments"][0]["start_time"] == 0.2
