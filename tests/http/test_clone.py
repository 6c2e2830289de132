"""POST /v1/audio/speech/clone on the real base dev checkpoint: containers, modes, formats,
the prompt cache, validation, upload limits, and that request strings never reach the model
package as paths or URLs."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.audio.formats import SUPPORTED_FORMATS
from tests.support.audio import decode_any
from tests.support.listener import recording_listener
from tests.support.live_server import LiveServer, RecordCollector, live_server
from tests.support.reference import encode_mp3, encode_soundfile, tone, wav

ENDPOINT = "/v1/audio/speech/clone"
TEXT = "Hello from a cloned voice."


def clone(server: LiveServer, reference: bytes, filename: str = "ref.wav", **fields: Any) -> httpx.Response:
    data = {"input": TEXT, "response_format": "wav", "seed": "3", **{k: str(v) for k, v in fields.items()}}
    with server.client() as client:
        return client.post(ENDPOINT, data=data, files={"file": (filename, reference)})


def prompt_lines(log: RecordCollector) -> list[dict[str, Any]]:
    return [dict(vars(r)) for r in log.records if r.name == "qwen3-tts" and r.getMessage() == "clone prompt"]


def assert_audio(response: httpx.Response, fmt: str = "wav") -> None:
    assert response.status_code == 200, response.text
    audio = decode_any(response.content, fmt)
    assert audio.duration > 0.1
    assert audio.rms > 1e-4


@pytest.mark.parametrize(
    "filename, reference",
    [
        ("ref.wav", encode_soundfile(tone(2.0, 16_000, channels=2, seed=1), 16_000, "wav")),
        ("ref.flac", encode_soundfile(tone(2.5, 44_100, seed=2), 44_100, "flac")),
        ("ref.mp3", encode_mp3(tone(2.0, 48_000, channels=2, seed=3), 48_000)),
    ],
)
def test_clone_from_each_container(server: LiveServer, filename: str, reference: bytes) -> None:
    assert_audio(clone(server, reference, filename))


@pytest.mark.parametrize("ref_text, mode", [("Hello there, this is me.", "icl"), (None, "x_vector")])
def test_icl_and_speaker_embedding_modes(
    server: LiveServer, request_log: RecordCollector, ref_text: str | None, mode: str
) -> None:
    fields = {"ref_text": ref_text} if ref_text else {}
    response = clone(server, wav(seed=10), **fields)
    assert_audio(response)
    assert prompt_lines(request_log)[-1]["mode"] == mode
    # Its own line (a line of an earlier test may still be arriving).
    assert request_log.wait_for_request(response.headers["x-request-id"])["voice"] == f"clone:{mode}"


@pytest.mark.parametrize("fmt", SUPPORTED_FORMATS)
def test_every_output_format_decodes(server: LiveServer, fmt: str) -> None:
    assert_audio(clone(server, wav(seed=20), response_format=fmt, input="Hi."), fmt)


def test_default_format_is_mp3(server: LiveServer) -> None:
    with server.client() as client:
        response = client.post(ENDPOINT, data={"input": "Hi."}, files={"file": ("r.wav", wav(seed=21))})
    assert response.headers["content-type"] == "audio/mpeg"
    assert_audio(response, "mp3")


def test_repeated_request_hits_the_prompt_cache(server: LiveServer, request_log: RecordCollector) -> None:
    reference = wav(seed=30)
    before = server.health()["clone"]["prompt_cache"]
    assert_audio(clone(server, reference, ref_text="Some words."))
    assert_audio(clone(server, reference, ref_text="Some words."))
    after = server.health()["clone"]["prompt_cache"]
    assert after["misses"] == before["misses"] + 1
    assert after["hits"] == before["hits"] + 1
    miss, hit = prompt_lines(request_log)[-2:]
    assert (miss["cache"], hit["cache"]) == ("miss", "hit")
    assert hit["prompt_ms"] < miss["prompt_ms"]
    # A different transcript is a different prompt.
    assert_audio(clone(server, reference, ref_text="Other words."))
    assert prompt_lines(request_log)[-1]["cache"] == "miss"


@pytest.mark.parametrize(
    "fields, param",
    [
        ({"input": ""}, "input"),
        ({"input": "x" * 4097}, "input"),
        ({"speed": "5"}, "speed"),
        ({"speed": "fast"}, "speed"),
        ({"response_format": "midi"}, "response_format"),
        ({"language": "Klingon"}, "language"),
        ({"seed": "-1"}, "seed"),
        ({"temperature": "3"}, "temperature"),
        ({"top_p": "0"}, "top_p"),
        ({"top_k": "many"}, "top_k"),
        ({"repetition_penalty": "nan"}, "repetition_penalty"),
        ({"max_new_tokens": "100000"}, "max_new_tokens"),
    ],
)
def test_invalid_fields_are_400(server: LiveServer, fields: dict[str, str], param: str) -> None:
    response = clone(server, wav(), **fields)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_missing_file_and_non_multipart_are_400(server: LiveServer) -> None:
    with server.client() as client:
        missing = client.post(ENDPOINT, files={"input": (None, TEXT)})  # multipart, no file part
        urlencoded = client.post(ENDPOINT, data={"input": TEXT})
        as_json = client.post(ENDPOINT, json={"input": TEXT})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "file"
    assert urlencoded.status_code == as_json.status_code == 400


@pytest.mark.parametrize(
    "reference, phrase",
    [
        (b"\x00\x01garbage that is not audio" * 50, "not audio"),
        (wav(seconds=0.4), "at least"),
        (encode_soundfile(tone(31.0, 8_000), 8_000, "wav"), "at most"),
    ],
    ids=["garbage", "too-short", "too-long"],
)
def test_unusable_reference_is_400(server: LiveServer, reference: bytes, phrase: str) -> None:
    response = clone(server, reference)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "file" and phrase in error["message"]


def test_request_strings_are_never_read_or_fetched(server: LiveServer, tmp_path: Path) -> None:
    with recording_listener() as listener:
        url = listener.url + "ref.wav"
        # Strings that the model package would read or fetch, were they passed as ref_audio.
        for text in ("/etc/passwd", url):
            assert_audio(clone(server, wav(seed=40), filename=text, ref_text=text, input="Hi."))
            bad = clone(server, text.encode(), filename=text, ref_text=text)
            assert bad.status_code == 400 and bad.json()["error"]["param"] == "file"
        with server.client() as client:
            named = client.post(
                "/v1/audio/voices", data={"name": url}, files={"audio_sample": ("/etc/passwd", wav(seed=41))}
            )
            assert named.status_code == 400
            speech = client.post("/v1/audio/speech", json={"model": "tts-1", "input": "Hi.", "voice": url})
            assert speech.status_code == 400
    assert listener.paths == []


def _multipart(reference: bytes) -> tuple[bytes, str]:
    request = httpx.Request("POST", "http://x/", data={"input": TEXT}, files={"file": ("r.wav", reference)})
    return request.read(), request.headers["content-type"]


def test_oversized_upload_is_413(custom_voice_dir: Path, base_dir: Path, tmp_path: Path) -> None:
    limit = 100_000
    with live_server(
        model_id=str(custom_voice_dir), clone_model_id=str(base_dir), voices_dir=tmp_path, max_upload_bytes=limit
    ) as server:
        big = wav(seconds=3.0)  # 144 kB of 16-bit samples
        body, content_type = _multipart(big)
        with server.client() as client:
            declared = client.post(ENDPOINT, content=body, headers={"content-type": content_type})
            # Chunked, no Content-Length: the real size is what counts.
            chunked = client.post(
                ENDPOINT,
                content=iter([body[i : i + 8192] for i in range(0, len(body), 8192)]),
                headers={"content-type": content_type},
            )
            voice = client.post("/v1/audio/voices", data={"name": "big"}, files={"audio_sample": ("r.wav", big)})
            small = client.post(
                ENDPOINT, data={"input": TEXT, "response_format": "wav"}, files={"file": ("r.wav", wav(1.5))}
            )
        for response in (declared, chunked, voice):
            assert response.status_code == 413, response.text
            assert response.json()["error"]["code"] == "payload_too_large"
        assert small.status_code == 200
        # Nothing was decoded or computed for the refused uploads.
        assert server.health()["clone"]["prompt_cache"]["misses"] == 1


def test_clone_and_preset_run_on_their_own_slots_and_unload_apart(custom_voice_dir: Path, base_dir: Path) -> None:
    with live_server(
        model_id=str(custom_voice_dir), clone_model_id=str(base_dir), idle_timeout=1.5, max_new_tokens=48
    ) as server:
        results: dict[str, int] = {}

        def preset() -> None:
            # Past the output cache: each call must really use the preset slot.
            with server.client(headers={"Cache-Control": "no-cache"}) as client:
                body = {"model": "tts-1", "voice": "alloy", "input": "Hello.", "response_format": "wav"}
                results["preset"] = client.post("/v1/audio/speech", json=body).status_code

        def cloned() -> None:
            results["clone"] = clone(server, wav(seed=50), input="Hello.").status_code

        threads = [threading.Thread(target=preset), threading.Thread(target=cloned)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == {"preset": 200, "clone": 200}
        models = server.health()["models"]
        # Each slot loaded once, and a slot refuses a model of another kind, so each request
        # ran on its own slot. (Kind is not read here: on a busy machine a slot may already
        # have idled out.)
        assert models["custom_voice"]["load_count"] == 1 and models["custom_voice"]["last_error"] is None
        assert models["base"]["load_count"] == 1 and models["base"]["last_error"] is None
        # Keep the preset slot busy while the base slot idles out. (One inference thread: the
        # preset slot may already have idled out while the clone ran; count from here.)
        preset()
        unloads = server.health()["models"]["custom_voice"]["unload_count"]
        deadline = time.monotonic() + 120  # generous: the base slot idles out after 1.5 s
        while time.monotonic() < deadline:
            preset()
            models = server.health()["models"]
            if not models["base"]["loaded"]:
                break
            time.sleep(0.2)
        assert models["base"]["unload_count"] == 1 and not models["base"]["loaded"]
        assert models["custom_voice"]["loaded"] and models["custom_voice"]["unload_count"] == unloads


def test_prompt_cache_is_lru_and_zero_disables_it() -> None:
    import numpy as np

    from server.speech.cloning import PromptCache

    audio = np.zeros(10, dtype=np.float32)
    keys = [PromptCache.key(audio, text, "icl") for text in ("a", "b", "c")]
    assert len(set(keys)) == 3 and PromptCache.key(audio, None, "x_vector") != PromptCache.key(audio, "", "icl")
    cache = PromptCache(2)
    cache.put(keys[0], "A")
    cache.put(keys[1], "B")
    assert cache.get(keys[0]) == "A"  # now the most recent
    cache.put(keys[2], "C")  # evicts B, the least recently used
    assert cache.get(keys[1]) is None and cache.get(keys[0]) == "A" and cache.get(keys[2]) == "C"
    assert cache.stats() == {"size": 2, "max": 2, "hits": 3, "misses": 1}
    disabled = PromptCache(0)
    disabled.put(keys[0], "A")
    assert disabled.get(keys[0]) is None and disabled.stats()["size"] == 0
