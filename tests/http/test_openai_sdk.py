"""The official `openai` SDK against the live server: every format, voice and model name,
the right exception class for each error, sync and async clients."""

from __future__ import annotations

import asyncio

import openai
import pytest

from server.speech.catalog import OPENAI_VOICES, QWEN_SPEAKERS
from tests.support.audio import decode_any
from tests.support.live_server import LiveServer

TEXT = "The quick brown fox. It jumps."
SEED = 5
# Expected (sample rate, media type) per format; opus decodes at 48 kHz by Ogg Opus convention.
FORMATS = {
    "mp3": (24_000, "audio/mpeg"),
    "opus": (48_000, "audio/ogg"),
    "aac": (24_000, "audio/aac"),
    "flac": (24_000, "audio/flac"),
    "wav": (24_000, "audio/wav"),
    "pcm": (24_000, "audio/pcm"),
}
FRAME_SECONDS = 1920 / 24_000


def sdk(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def pcm_duration(server: LiveServer) -> float:
    data = (
        sdk(server)
        .audio.speech.create(model="tts-1", voice="alloy", input=TEXT, response_format="pcm", extra_body={"seed": SEED})
        .content
    )
    return len(data) / 2 / 24_000


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_format_round_trips(server: LiveServer, pcm_duration: float, fmt: str) -> None:
    expected_rate, media_type = FORMATS[fmt]
    raw = sdk(server).audio.speech.with_raw_response.create(
        model="tts-1", voice="alloy", input=TEXT, response_format=fmt, extra_body={"seed": SEED}
    )
    assert raw.headers["content-type"] == media_type
    data = raw.content
    audio = decode_any(data, fmt)
    assert audio.sample_rate == expected_rate
    assert audio.channels == 1
    assert audio.rms > 1e-3
    # Codecs add priming and padding: allow two codec frames either way.
    assert abs(audio.duration - pcm_duration) <= 2 * FRAME_SECONDS, (fmt, audio.duration, pcm_duration)


def test_default_format_is_mp3(server: LiveServer) -> None:
    response = sdk(server).audio.speech.create(model="tts-1", voice="alloy", input="Hi.")
    assert response.response.headers["content-type"] == "audio/mpeg"
    assert decode_any(response.content, "mp3").duration > 0


@pytest.mark.parametrize("voice", [*OPENAI_VOICES, *QWEN_SPEAKERS, "VIVIAN", "uncle_fu"])
def test_every_voice_name(server: LiveServer, voice: str) -> None:
    data = sdk(server).audio.speech.create(model="tts-1", voice=voice, input="Hi.", response_format="pcm").content
    assert len(data) > 0


def test_voice_object_form(server: LiveServer) -> None:
    data = (
        sdk(server)
        .audio.speech.create(model="tts-1", voice={"id": "Serena"}, input="Hi.", response_format="pcm")
        .content
    )
    assert len(data) > 0


@pytest.mark.parametrize(
    "model", ["tts-1", "tts-1-hd", "gpt-4o-mini-tts", "tts-1-1106", "tts-1-hd-1106", "gpt-4o-mini-tts-2025-03-20"]
)
def test_every_openai_model_name(server: LiveServer, model: str) -> None:
    assert sdk(server).audio.speech.create(model=model, voice="alloy", input="Hi.", response_format="pcm").content


def test_served_model_ids(server: LiveServer) -> None:
    client = sdk(server)
    for model in ("qwen3-tts", server.settings.model_id):
        assert client.audio.speech.create(model=model, voice="alloy", input="Hi.", response_format="pcm").content


def test_sdk_raises_bad_request_with_a_useful_message(server: LiveServer) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(server).audio.speech.create(model="tts-1", voice="nobody", input="Hi.")
    assert "unknown voice" in str(caught.value)
    assert caught.value.body["param"] == "voice"  # type: ignore[index]


def test_sdk_raises_not_found_for_an_unknown_model(server: LiveServer) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        sdk(server).audio.speech.create(model="dall-e-3", voice="alloy", input="Hi.")
    assert caught.value.body["code"] == "model_not_found"  # type: ignore[index]


def test_async_client(server: LiveServer) -> None:
    async def run() -> list[bytes]:
        client = openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)
        responses = await asyncio.gather(
            *(
                client.audio.speech.create(model="tts-1", voice=v, input="Hi.", response_format="wav")
                for v in ("alloy", "onyx")
            )
        )
        await client.close()
        return [r.content for r in responses]

    for data in asyncio.run(run()):
        assert decode_any(data, "wav").duration > 0


def test_language_reaches_the_model(server: LiveServer, request_log) -> None:  # type: ignore[no-untyped-def]
    client = sdk(server)
    client.audio.speech.create(
        model="tts-1", voice="alloy", input="Guten Tag.", response_format="pcm", extra_body={"language": "de"}
    )
    client.audio.speech.create(model="tts-1", voice="alloy", input="你好。", response_format="pcm")
    languages = [line["language"] for line in request_log.wait_for_requests(2, "/v1/audio/speech")]
    assert languages == ["German", "Chinese"]
