"""POST /v1/audio/speech/captioned on the dev checkpoints and the dev aligner: the audio and
its words, whole and as NDJSON, SRT and WebVTT files a parser reads, speed, the settings in
/health and /v1/info, and the 400s."""

from __future__ import annotations

import base64
import io
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
import srt
import webvtt

from tests.support.audio import decode_pcm16, decode_soundfile
from tests.support.live_server import LiveServer
from tests.timestamps.conftest import EPSILON, TEXT, check_segments, expected_words, sentences_of

CAPTIONED = "/v1/audio/speech/captioned"


def body(**fields: Any) -> dict[str, Any]:
    return {"input": TEXT, "voice": "Vivian", "response_format": "pcm", "seed": 11, "stream": False, **fields}


def captioned(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = client.post(CAPTIONED, json=body(**fields))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    result: dict[str, Any] = response.json()
    return result


def ndjson(client: httpx.Client, **fields: Any) -> list[dict[str, Any]]:
    with client.stream("POST", CAPTIONED, json=body(stream=True, **fields)) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("application/x-ndjson")
        return [json.loads(line) for line in response.iter_lines() if line]


def test_whole_answer_has_the_audio_and_every_word_in_order(timed_server: LiveServer) -> None:
    with timed_server.client() as client:
        result = captioned(client)
    audio = decode_pcm16(base64.b64decode(result["audio"]))
    seconds = audio.samples.shape[0] / 24_000
    assert result["audio_format"] == "pcm" and result["seed"] == 11 and result["finish_reason"] == "stop"
    assert audio.rms > 1e-3
    check_segments(result["segments"], sentences_of(TEXT), seconds)
    # Kokoro's flat list: every unit of the input once, in order (3 and each CJK character too).
    assert [w["word"] for w in result["timestamps"]] == expected_words([TEXT])
    assert "3" in [w["word"] for w in result["timestamps"]] and "你" in [w["word"] for w in result["timestamps"]]
    assert result["timestamps"] == [w for s in result["segments"] for w in s["words"]]


def test_encoded_formats_carry_the_same_file_as_speech(timed_server: LiveServer) -> None:
    with timed_server.client() as client:
        result = captioned(client, response_format="wav")
    decoded = decode_soundfile(base64.b64decode(result["audio"]))
    assert decoded.sample_rate == 24_000
    assert abs(result["segments"][-1]["end_time"] - decoded.samples.shape[0] / 24_000) <= EPSILON


def test_streamed_lines_decode_to_the_whole_answer_and_words_follow_their_audio(timed_server: LiveServer) -> None:
    with timed_server.client() as client:
        whole = captioned(client)
        lines = ndjson(client)
    audio = b""
    segments = []
    for line in lines[:-1]:
        if line["audio"]:
            assert line["timestamps"] == []
            audio += base64.b64decode(line["audio"])
            continue
        # A sentence's words, once the bytes of its audio have all been sent.
        assert len(audio) >= round(line["end_time"] * 24_000) * 2 - 2
        segments.append(
            {
                **{k: v for k, v in line.items() if k not in ("audio", "audio_format", "timestamps")},
                "words": line["timestamps"],
            }
        )
    done = lines[-1]
    assert done["done"] is True and done["seed"] == 11 and done["finish_reason"] == "stop"
    assert audio == base64.b64decode(whole["audio"])
    assert segments == whole["segments"]


def seconds_of(clock: str) -> float:
    hours, minutes, seconds = clock.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def test_srt_and_vtt_subtitles_are_one_cue_per_sentence(timed_server: LiveServer) -> None:
    with timed_server.client() as client:
        as_srt = captioned(client, timestamps_format="srt")
        as_vtt = captioned(client, timestamps_format="vtt")
        streamed = ndjson(client, timestamps_format="vtt")
    expected = [(s["start_time"], s["end_time"]) for s in as_srt["segments"]]
    assert as_srt["subtitles_format"] == "srt"
    cues = list(srt.parse(as_srt["subtitles"]))
    assert [(c.start, c.end) for c in cues] == [
        (timedelta(seconds=start), timedelta(seconds=end)) for start, end in expected
    ]
    assert [c.content for c in cues] == list(sentences_of(TEXT))
    captions = webvtt.from_buffer(io.StringIO(as_vtt["subtitles"])).captions
    vtt_times = [seconds_of(t) for c in captions for t in (c.start, c.end)]
    assert vtt_times == pytest.approx([t for pair in expected for t in pair], abs=EPSILON)
    assert [c.text for c in captions] == list(sentences_of(TEXT))
    assert streamed[-1]["subtitles"] == as_vtt["subtitles"]  # the same seed: the same file


def test_speed_scales_the_times_of_the_same_words(timed_server: LiveServer) -> None:
    with timed_server.client() as client:
        normal = captioned(client)
        fast = captioned(client, speed=2.0)
    audio = decode_pcm16(base64.b64decode(fast["audio"]))
    check_segments(fast["segments"], sentences_of(TEXT), audio.samples.shape[0] / 24_000)
    for slow_segment, fast_segment in zip(normal["segments"], fast["segments"], strict=True):
        fast_length = fast_segment["end_time"] - fast_segment["start_time"]
        assert fast_length == pytest.approx((slow_segment["end_time"] - slow_segment["start_time"]) / 2, abs=0.02)
        for slow, quick in zip(slow_segment["words"], fast_segment["words"], strict=True):
            # The aligner heard the same natural-speed audio; its times are halved, clamped to the audio.
            for key in ("start_time", "end_time"):
                halved = min((slow[key] - slow_segment["start_time"]) / 2, fast_length)
                assert quick[key] - fast_segment["start_time"] == pytest.approx(halved, abs=0.02)


def test_return_timestamps_false_answers_the_audio_alone(server: LiveServer) -> None:
    """Kokoro's switch; on a server without the aligner too."""
    with server.client() as client:
        result = captioned(client, return_timestamps=False)
        refused = client.post(CAPTIONED, json=body(return_timestamps=False, timestamps_format="srt"))
        disagree = client.post(CAPTIONED, json=body(return_timestamps=False, timestamps=True))
    assert result["timestamps"] == [] and result["segments"] == []
    assert decode_pcm16(base64.b64decode(result["audio"])).rms > 1e-3
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "timestamps_format"
    assert disagree.status_code == 400 and disagree.json()["error"]["param"] == "timestamps"


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        (CAPTIONED, {}),
        ("/v1/audio/speech", {"stream_format": "sse", "timestamps": True}),
        ("/v1/audio/speech/stream", {"timestamps": True}),
    ],
)
def test_without_the_aligner_timestamps_are_refused_saying_how_to_turn_them_on(
    server: LiveServer, path: str, fields: dict[str, Any]
) -> None:
    with server.client() as client:
        response = client.post(path, json=body(**fields))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "timestamps_unavailable" and "ALIGNER_MODEL_ID" in error["message"]


@pytest.mark.parametrize(
    ("path", "fields", "param"),
    [
        ("/v1/audio/speech", {"timestamps": True}, "timestamps"),  # not sse
        ("/v1/audio/speech/stream/pcm", {"timestamps": True}, "timestamps"),
        (CAPTIONED, {"stream_format": "sse"}, "stream_format"),
        (CAPTIONED, {"timestamps_format": "ass"}, "timestamps_format"),
        ("/v1/audio/speech", {"return_timestamps": True}, "return_timestamps"),
    ],
)
def test_timestamps_where_they_have_no_place_are_refused(
    timed_server: LiveServer, path: str, fields: dict[str, Any], param: str
) -> None:
    with timed_server.client() as client:
        response = client.post(path, json=body(**fields))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_health_and_info_show_the_aligner(timed_server: LiveServer, server: LiveServer) -> None:
    with timed_server.client() as client:
        captioned(client, input="Hello there.")
        info = client.get("/v1/info").json()
    aligner = timed_server.health()["aligner"]
    assert aligner["enabled"] is True and aligner["status"] == "loaded" and aligner["aligned"] >= 1
    assert aligner["model_id"] == info["aligner_model_id"] and info["timestamps"] is True
    off = server.health()["aligner"]
    assert off["enabled"] is False and "ALIGNER_MODEL_ID" in off["how_to_enable"]
    with server.client() as client:
        assert client.get("/v1/info").json()["timestamps"] is False
