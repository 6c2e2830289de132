"""vLLM-Omni's fields on /v1/audio/speech through the official `openai` SDK (`extra_body`):
honoured where they map onto this server (task types, an inline reference, the first
chunk's size, max_new_tokens), refused with a 400 naming the field where they do not."""

from __future__ import annotations

import base64
from typing import Any

import openai
import pytest

from tests.support.audio import decode_pcm16
from tests.support.engine_control import wait_until
from tests.support.live_server import LiveServer, RecordCollector
from tests.support.reference import encode_soundfile, tone

TEXT = "Omni fields speak. Two sentences."
REFERENCE = encode_soundfile(tone(2.0), 24_000, "wav")
DATA_URL = "data:audio/wav;base64," + base64.b64encode(REFERENCE).decode()


def sdk(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)


def speak(server: LiveServer, voice: str = "Ryan", **extra: Any) -> bytes:
    response = sdk(server).audio.speech.create(
        model="tts-1", voice=voice, input=TEXT, response_format="pcm", extra_body={"stream": False, **extra}
    )
    return response.content


def inline_voices(request_log: RecordCollector) -> list[str]:
    return [line["voice"] for line in request_log.requests("/v1/audio/speech") if line["voice"].startswith("ref_")]


def refused(server: LiveServer, voice: str = "Ryan", **extra: Any) -> dict[str, Any]:
    with pytest.raises(openai.BadRequestError) as caught:
        speak(server, voice, **extra)
    body = caught.value.body
    assert isinstance(body, dict)
    return body


def test_custom_voice_is_the_preset_path(server: LiveServer) -> None:
    assert speak(server, task_type="CustomVoice", seed=3) == speak(server, seed=3)


def test_base_with_an_inline_reference_clones_it(server: LiveServer, request_log: RecordCollector) -> None:
    in_context = speak(server, task_type="Base", ref_audio=DATA_URL, ref_text="A tone, not words.", seed=4)
    assert decode_pcm16(in_context).rms > 1e-3
    # Bare base64 (what LiveKit's plugin sends for a local file) and x-vector mode.
    bare = base64.b64encode(REFERENCE).decode()
    x_vector = speak(server, ref_audio=bare, ref_text="unused here", x_vector_only_mode=True, seed=4)
    assert decode_pcm16(x_vector).rms > 1e-3
    # (A line is written a moment after its response; an earlier test's may arrive meanwhile.)
    wait_until(lambda: len(inline_voices(request_log)) == 2)
    assert [voice.split(":")[:2] for voice in inline_voices(request_log)] == [
        ["ref_audio", "icl"],
        ["ref_audio", "x_vector"],
    ]
    prompts = [r for r in request_log.records if r.getMessage() == "clone prompt"]
    assert [vars(r)["mode"] for r in prompts[-2:]] == ["icl", "x_vector"]


def test_base_with_a_saved_voice(server: LiveServer) -> None:
    with server.client() as client:
        files = {"audio_sample": ("ref.wav", REFERENCE)}
        created = client.post("/v1/audio/voices", data={"name": "Omni Saved", "ref_text": "A tone."}, files=files)
        assert created.status_code == 200, created.text
    assert decode_pcm16(speak(server, voice="Omni Saved", task_type="Base", seed=1)).rms > 1e-3
    assert refused(server, voice="Omni Saved", task_type="CustomVoice")["param"] == "voice"


def test_initial_codec_chunk_frames_sets_the_first_chunk(server: LiveServer, request_log: RecordCollector) -> None:
    for frames in (1, 3):
        with sdk(server).audio.speech.with_streaming_response.create(
            model="tts-1",
            voice="Ryan",
            input=TEXT,
            response_format="pcm",
            extra_body={"initial_codec_chunk_frames": frames, "seed": 2},
        ) as response:
            assert decode_pcm16(response.read()).rms > 1e-3
    wait_until(lambda: len(request_log.requests("/v1/audio/speech")) >= 2)
    lines = [line for line in request_log.requests("/v1/audio/speech") if line["chunks"] > 1]
    assert [line["first_chunk_frames"] for line in lines] == [1, 3]


@pytest.mark.parametrize(
    ("extra", "param", "words"),
    [
        ({"task_type": "VoiceDesign", "instructions": "a calm voice"}, "task_type", "not served by this configuration"),
        ({"task_type": "Speak"}, "task_type", "CustomVoice"),
        ({"task_type": "Base"}, "voice", "preset voice"),
        ({"task_type": "CustomVoice", "ref_audio": DATA_URL}, "ref_audio", "Base"),
        ({"ref_audio": "https://example.com/me.wav"}, "ref_audio", "never fetched"),
        ({"ref_audio": "file:///etc/passwd"}, "ref_audio", "never fetched"),
        ({"ref_audio": "/etc/passwd"}, "ref_audio", "file paths are never read"),
        ({"ref_audio": "voices/me.wav"}, "ref_audio", "file paths are never read"),
        ({"ref_audio": "data:audio/wav,abc"}, "ref_audio", "base64"),
        ({"ref_audio": "data:audio/wav;base64," + base64.b64encode(b"not audio").decode()}, "ref_audio", ""),
        ({"ref_text": "a transcript alone"}, "ref_text", "ref_audio"),
        ({"x_vector_only_mode": True}, "x_vector_only_mode", "ref_audio"),
        ({"ref_audio": DATA_URL, "x_vector_only_mode": False}, "ref_text", "transcript"),
        ({"initial_codec_chunk_frames": 0}, "initial_codec_chunk_frames", ""),
        ({"max_new_tokens": 1}, "max_new_tokens", ""),
    ],
)
def test_fields_that_do_not_map_are_refused_by_name(
    server: LiveServer, extra: dict[str, Any], param: str, words: str
) -> None:
    body = refused(server, **extra)
    assert body["param"] == param, body
    assert words in body["message"]
