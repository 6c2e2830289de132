"""What clients of the earlier Qwen3-TTS server and Open WebUI call, answered unchanged:
the raw PCM route, /health's fields, /v1/info, an optional model, Open WebUI's model and
voice lists, and a socket utterance refused while the queue is full."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from server.speech.catalog import OPENAI_VOICES, QWEN_SPEAKERS
from tests.support.audio import decode_av, decode_pcm16
from tests.support.live_server import LiveServer, live_server
from tests.support.ws import receive_until_end, send, ws_connect

BODY = {"model": "tts-1", "voice": "Serena", "input": "Raw samples, please. Two sentences.", "seed": 9}


def test_pcm_route_streams_raw_int16_with_its_layout_in_headers(server: LiveServer) -> None:
    with server.client() as client:
        whole = client.post("/v1/audio/speech", json={**BODY, "response_format": "pcm", "stream": False})
        with client.stream("POST", "/v1/audio/speech/stream/pcm", json=BODY) as response:
            assert response.status_code == 200
            parts = list(response.iter_bytes())
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.headers["content-type"] == "audio/pcm"
    assert response.headers["x-sample-rate"] == "24000"
    assert response.headers["x-sample-width"] == "2"
    assert response.headers["x-channels"] == "1"
    # The earlier server's names for the same layout, which its clients read.
    assert response.headers["x-pcm-sample-rate"] == "24000"
    assert response.headers["x-pcm-bit-depth"] == "16"
    assert response.headers["x-pcm-channels"] == "1"
    assert b"".join(parts) == whole.content
    assert decode_pcm16(whole.content).rms > 1e-3


def test_pcm_route_refuses_what_it_cannot_honour(server: LiveServer) -> None:
    with server.client() as client:
        for change, param in (
            ({"response_format": "mp3"}, "response_format"),
            ({"stream_format": "sse"}, "stream_format"),
        ):
            response = client.post("/v1/audio/speech/stream/pcm", json={**BODY, **change})
            assert response.status_code == 400
            assert response.json()["error"]["param"] == param
        # pcm said explicitly is fine, and so is a body without a model.
        plain = {k: v for k, v in BODY.items() if k != "model"} | {"response_format": "pcm"}
        assert client.post("/v1/audio/speech/stream/pcm", json=plain).status_code == 200


def test_a_body_without_model_is_the_preset_model(server: LiveServer) -> None:
    without = {k: v for k, v in BODY.items() if k != "model"} | {"response_format": "wav", "stream": False}
    with server.client() as client:
        response = client.post("/v1/audio/speech", json=without)
        named = client.post("/v1/audio/speech", json={**without, "model": "tts-1"})
    assert response.status_code == 200
    assert response.content == named.content  # same seed, same model


def test_health_has_the_earlier_servers_fields_and_keeps_its_own(server: LiveServer) -> None:
    health = server.health()
    assert isinstance(health["model_loaded"], bool)
    assert health["model_loaded"] == health["models"]["custom_voice"]["loaded"]
    assert health["model_id"] == server.settings.model_id
    assert health["cuda"] is False
    # Lower case, as the earlier server listed them: its clients test `"vivian" in voices`.
    assert {name.lower() for name in (*QWEN_SPEAKERS, *OPENAI_VOICES)} <= set(health["voices"])
    assert "vivian" in health["voices"] and all(name == name.lower() for name in health["voices"])
    assert health["audio_cache_size"] == health["cache"]["output"]["size"]
    assert health["voice_cache_size"] == health["cache"]["prompt"]["size"]
    # The output cache's capacity in clips, under the earlier server's name: AUDIO_CACHE_MAX.
    assert health["audio_cache_max"] == server.settings.audio_cache_max == health["cache"]["output"]["max"]
    output = health["cache"]["output"]
    assert output["max"] == server.settings.audio_cache_max == 256
    assert output["max_bytes"] == server.settings.audio_cache_max_bytes
    assert {"size", "bytes", "hits", "misses"} <= set(output)
    assert health["cache"]["prompt"]["max"] == server.settings.voice_cache_max
    for kept in ("status", "queue_depth", "max_queue_depth", "models", "gpu", "clone"):
        assert kept in health


def test_info_names_the_stream_voices_and_model(server: LiveServer) -> None:
    with server.client() as client:
        info = client.get("/v1/info").json()
    assert info["model_id"] == server.settings.model_id
    assert info["stream_type"] == "frames"  # audio streams every few codec frames
    assert info["sample_rate"] == 24000 and 16000 in info["sample_rates"]
    assert "Vivian" in info["voices"] and "alloy" in info["voices"]
    assert info["websocket"] == "/v1/audio/speech/ws"
    assert "pcm" in info["formats"]


def test_open_webui_lists_models_and_voices_then_speaks(server: LiveServer) -> None:
    # Open WebUI's OpenAI engine: GET {base}/audio/models and {base}/audio/voices, then speech.
    base = f"{server.base_url}/v1"
    models = httpx.get(f"{base}/audio/models", timeout=30).json()["models"]
    voices = httpx.get(f"{base}/audio/voices", timeout=30).json()["voices"]
    assert {"id": "tts-1"} in models and all(set(m) == {"id"} for m in models)
    voice_names = {v["id"]: v["name"] for v in voices}
    assert voice_names["alloy"] == "alloy"
    response = httpx.post(
        f"{base}/audio/speech",
        json={"input": "Open WebUI says hello.", "model": models[0]["id"], "voice": "alloy", "max_new_tokens": 32},
        headers={"Authorization": "Bearer unused"},
        timeout=120,
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/mpeg"
    assert decode_av(response.content).duration > 0


def wait_for_depth(server: LiveServer, depth: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while server.health()["queue_depth"] != depth:
        assert time.monotonic() < deadline, f"queue depth never reached {depth}"
        time.sleep(0.02)


def test_model_loaded_is_pollable_and_a_full_queue_is_an_error_event(custom_voice_dir: Path) -> None:
    with live_server(model_id=str(custom_voice_dir), max_queue_depth=1, max_new_tokens=24, idle_timeout=0) as srv:
        assert srv.health()["model_loaded"] is False  # lazy: nothing asked for it yet
        text = " ".join(f"Sentence {i} holds the only place in the queue." for i in range(6))
        with srv.client() as client, ws_connect(srv) as socket:
            with client.stream("POST", "/v1/audio/speech", json={**BODY, "input": text, "response_format": "pcm"}) as r:
                # Admitted: it loads the model, then speaks six sentences, holding the only place.
                wait_for_depth(srv, 1)
                send(socket, {**BODY, "input": "Me too."})
                busy = receive_until_end(socket)
                r.read()
            assert busy.last["event"] == "error" and busy.last["code"] == "server_busy"
            wait_for_depth(srv, 0)
            send(socket, {**BODY, "input": "Me too."})
            assert receive_until_end(socket).last["event"] == "done"
        assert srv.health()["model_loaded"] is True


def test_cache_clear_answers_the_earlier_servers_counts_beside_ours(server: LiveServer) -> None:
    with server.client() as client:
        body = {**BODY, "input": "Kept for the cache-clear answer.", "response_format": "pcm", "stream": False}
        body.pop("seed")  # seeded requests bypass the output cache
        assert client.post("/v1/audio/speech", json=body).status_code == 200
        assert server.health()["audio_cache_size"] >= 1
        cleared = client.post("/cache/clear").json()
    assert cleared["audio_cleared"] == cleared["cleared"]["output"] >= 1
    assert cleared["voice_cleared"] == cleared["cleared"]["prompt"]
    assert server.health()["audio_cache_size"] == 0
