"""Voices described in words, through a live server on the dev checkpoints: the direct path
(the design model named on /v1/audio/speech, whole, chunked, SSE, the official SDK and the
WebSocket), the persistent path (`POST /v1/audio/voices` with `type: prompt`, then the Base
model speaks the saved voice), the slot in /health, /v1/models, /v1/info and the metrics, and
the 400s, including a server whose slot is off."""

from __future__ import annotations

import base64
import concurrent.futures
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from httpx_sse import connect_sse

from server.speech.described_voices import DESIGN_MODEL_ALIAS, DESIGN_VOICE
from server.speech.design import CALIBRATION_LINES
from tests.support.audio import decode_pcm16, decode_soundfile
from tests.support.engine_control import inference_held, wait_until
from tests.support.live_server import LiveServer, RecordCollector, dev_settings, live_server
from tests.support.ws import receive_until_end, send, ws_connect

SPEECH = "/v1/audio/speech"
VOICES = "/v1/audio/voices"
DESCRIPTION = "A warm, low voice, speaking slowly and close to the microphone."
TEXT = "Good evening. This voice was described in words."


@pytest.fixture(scope="module")
def design_server(
    custom_voice_dir: Path, base_dir: Path, voice_design_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    settings = dev_settings(custom_voice_dir, base_dir, tmp_path_factory.mktemp("voices"))
    with live_server(**settings, design_model_id=str(voice_design_dir)) as running:
        yield running


def design_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": DESIGN_MODEL_ALIAS,
        "voice": DESIGN_VOICE,
        "input": TEXT,
        "instructions": DESCRIPTION,
        "response_format": "pcm",
        "seed": 5,
    }
    body.update(fields)
    return {key: value for key, value in body.items() if value is not None}


def pcm_of(client: httpx.Client, body: dict[str, Any]) -> np.ndarray:
    response = client.post(SPEECH, json=body)
    assert response.status_code == 200, response.text
    assert "X-Instructions-Ignored" not in response.headers  # the description is the voice
    return decode_pcm16(response.content).samples


def assert_error(response: httpx.Response, status: int, param: str, code: str | None = None) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    message: str = error["message"]
    return message


# ---- the direct path ---------------------------------------------------------------------


def test_described_voice_whole_streamed_and_sse_agree(design_server: LiveServer) -> None:
    with design_server.client() as client:
        whole = pcm_of(client, design_body(stream=False))
        assert whole.size > 0.3 * 24_000 and np.abs(whole).max() > 0
        assert np.array_equal(pcm_of(client, design_body()), whole)  # chunked audio, same seed
        with connect_sse(client, "POST", SPEECH, json=design_body(stream_format="sse")) as events:
            assert events.response.status_code == 200
            deltas = [json.loads(e.data) for e in events.iter_sse()]
        assert deltas[-1]["type"] == "speech.audio.done"
        audio = b"".join(base64.b64decode(d["audio"]) for d in deltas if d["type"] == "speech.audio.delta")
        assert np.array_equal(decode_pcm16(audio).samples, whole)
        # The model's own id names it too.
        by_id = design_body(model=design_server.settings.design_model_id)
        assert np.array_equal(pcm_of(client, by_id), whole)


def test_same_seed_same_voice_another_description_another(design_server: LiveServer) -> None:
    with design_server.client() as client:
        first = pcm_of(client, design_body(seed=9))
        assert np.array_equal(pcm_of(client, design_body(seed=9)), first)
        other = pcm_of(client, design_body(seed=9, instructions="A bright, quick young voice."))
        assert other.shape != first.shape or not np.array_equal(other, first)


def test_described_voices_share_the_batch_and_keep_their_audio(
    design_server: LiveServer, request_log: RecordCollector
) -> None:
    bodies = {
        "design-warm": design_body(seed=21),
        "design-bright": design_body(seed=22, instructions="A bright, quick young voice."),
    }

    def run(rid: str) -> np.ndarray:
        with design_server.client(headers={"X-Request-ID": rid}) as client:
            return pcm_of(client, bodies[rid])

    with design_server.client() as client:
        alone = {rid: pcm_of(client, body) for rid, body in bodies.items()}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        with inference_held(design_server):
            futures = {rid: pool.submit(run, rid) for rid in bodies}
            wait_until(lambda: design_server.engine.depth == 2)
        together = {rid: future.result() for rid, future in futures.items()}
    for rid in bodies:
        assert np.array_equal(together[rid], alone[rid]), rid
        assert request_log.wait_for_request(rid)["batch_max"] == 2


def test_official_sdk_speaks_a_described_voice(design_server: LiveServer) -> None:
    client = openai.OpenAI(base_url=f"{design_server.base_url}/v1", api_key="unused", max_retries=0)
    response = client.audio.speech.create(
        model=DESIGN_MODEL_ALIAS,
        voice=DESIGN_VOICE,
        input=TEXT,
        instructions=DESCRIPTION,
        response_format="wav",
        extra_body={"seed": 5},
    )
    decoded = decode_soundfile(response.content)
    assert decoded.sample_rate == 24_000 and decoded.duration > 0.3
    with design_server.client() as raw:
        assert np.allclose(decoded.samples, pcm_of(raw, design_body()), atol=1 / 32768)


def test_websocket_speaks_a_described_voice(design_server: LiveServer) -> None:
    with design_server.client() as client:
        expected = pcm_of(client, design_body())
    with ws_connect(design_server) as socket:
        send(socket, design_body())
        answer = receive_until_end(socket)
        assert answer.last["event"] == "done", answer.events
        assert np.array_equal(decode_pcm16(answer.audio).samples, expected)
        send(socket, design_body(instructions=None))
        refused = receive_until_end(socket)
        assert refused.last["event"] == "error" and refused.last["param"] == "instructions"


def test_direct_path_refusals(design_server: LiveServer) -> None:
    with design_server.client() as client:
        message = assert_error(
            client.post(SPEECH, json=design_body(instructions=None)), 400, "instructions", "missing_voice_description"
        )
        assert "describe the voice" in message
        assert_error(client.post(SPEECH, json=design_body(instructions="   ")), 400, "instructions")
        message = assert_error(client.post(SPEECH, json=design_body(voice="alloy")), 400, "voice")
        assert repr(DESIGN_VOICE) in message and "alloy" in message
        message = assert_error(client.post(SPEECH, json=design_body(model="tts-1")), 400, "model")
        assert DESIGN_MODEL_ALIAS in message
        # Presets on the preset model are untouched by the slot.
        preset = client.post(SPEECH, json={"model": "tts-1", "voice": "alloy", "input": "Hi.", "stream": False})
        assert preset.status_code == 200


# ---- the slot in the server's reports --------------------------------------------------


def test_slot_in_health_models_info_and_metrics(design_server: LiveServer) -> None:
    with design_server.client() as client:
        pcm_of(client, design_body())  # the slot has loaded
        health = client.get("/health").json()
        slot = health["models"]["voice_design"]
        assert slot["loaded"] and slot["kind"] == "voice_design" and slot["honours_instructions"] is True
        assert slot["load_count"] >= 1 and slot["model_id"] == design_server.settings.design_model_id
        assert health["voice_design"] == {
            "enabled": True,
            "model_id": design_server.settings.design_model_id,
            "model": DESIGN_MODEL_ALIAS,
            "voice": DESIGN_VOICE,
        }
        listed = [m["id"] for m in client.get("/v1/models").json()["data"]]
        assert DESIGN_MODEL_ALIAS in listed
        assert client.get("/v1/info").json()["design_model_id"] == design_server.settings.design_model_id
        metrics = client.get("/metrics").text
        assert 'qwen3_tts_model_loaded{slot="voice_design"} 1.0' in metrics
        assert 'qwen3_tts_model_loads_total{slot="voice_design"}' in metrics


def test_slot_off_is_a_400_saying_how_to_turn_it_on(server: LiveServer) -> None:
    """The shared server has no DESIGN_MODEL_ID."""
    with server.client() as client:
        for body, param in ((design_body(), "model"), (design_body(model="tts-1"), "voice")):
            message = assert_error(client.post(SPEECH, json=body), 400, param, "design_model_off")
            assert "DESIGN_MODEL_ID" in message
        created = client.post(VOICES, json={"type": "prompt", "name": "Nobody", "prompt": DESCRIPTION})
        assert "DESIGN_MODEL_ID" in assert_error(created, 400, "type", "design_model_off")
        health = client.get("/health").json()
        assert (
            health["voice_design"]["enabled"] is False and "DESIGN_MODEL_ID" in health["voice_design"]["how_to_enable"]
        )
        assert "voice_design" not in health["models"]
        assert client.get("/v1/info").json()["design_model_id"] is None
        assert DESIGN_MODEL_ALIAS not in [m["id"] for m in client.get("/v1/models").json()["data"]]


# ---- the persistent path ---------------------------------------------------------------


def speak_saved(client: httpx.Client, voice: Any, seed: int = 1) -> np.ndarray:
    body = {"model": "tts-1", "input": "Hello again.", "voice": voice, "response_format": "pcm", "seed": seed}
    response = client.post(SPEECH, json=body)
    assert response.status_code == 200, response.text
    return decode_pcm16(response.content).samples


def test_designed_voice_saved_listed_reused_deleted(
    design_server: LiveServer, request_log: RecordCollector, tmp_path: Path
) -> None:
    with design_server.client() as client:
        created = client.post(
            VOICES,
            json={"type": "prompt", "name": "Night Narrator", "prompt": DESCRIPTION, "language": "en", "seed": 2},
        )
        assert created.status_code == 200, created.text
        voice = created.json()
        assert voice["type"] == "prompt" and voice["description"] == DESCRIPTION
        assert voice["language"] == "English" and voice["script"] == CALIBRATION_LINES["English"]
        assert voice["mode"] == "icl" and voice["id"].startswith("voice_")
        [logged] = request_log.wait_for_requests(1, endpoint=VOICES)  # the design model's work is logged
        assert logged["status"] == 200 and logged["voice"] == DESIGN_VOICE

        listed = {v["id"]: v for v in client.get(VOICES).json()["voices"]}
        assert listed[voice["id"]]["type"] == "prompt"
        assert listed[voice["id"]]["description"] == DESCRIPTION
        assert client.get(f"{VOICES}/{voice['id']}").json() == voice

        # The Base model speaks it from its reference: the same seed gives the same audio.
        first = speak_saved(client, "Night Narrator")
        assert first.size > 0
        assert np.array_equal(speak_saved(client, {"id": voice["id"]}), first)
        saved_body = {"model": "tts-1", "input": "Hello again.", "voice": "Night Narrator", "seed": 1}
        with connect_sse(
            client, "POST", SPEECH, json={**saved_body, "stream_format": "sse", "response_format": "pcm"}
        ) as events:
            deltas = [json.loads(e.data) for e in events.iter_sse()]
        audio = b"".join(base64.b64decode(d["audio"]) for d in deltas if d["type"] == "speech.audio.delta")
        assert np.array_equal(decode_pcm16(audio).samples, first)
        with ws_connect(design_server) as socket:
            send(socket, saved_body)
            answer = receive_until_end(socket)
        assert answer.last["event"] == "done" and np.array_equal(decode_pcm16(answer.audio).samples, first)
        assert not np.array_equal(speak_saved(client, "night narrator", seed=2)[: first.size], first[: first.size])
        health = client.get("/health").json()
        assert health["models"]["base"]["loaded"]

        # A server started again on the same library reads it back with its type and description.
        with live_server(**design_server.settings.model_dump()) as again, again.client() as other:
            assert other.get(f"{VOICES}/{voice['id']}").json() == voice
            assert np.array_equal(speak_saved(other, "Night Narrator"), first)

        assert client.delete(f"{VOICES}/{voice['id']}").json()["deleted"] is True
        assert client.get(f"{VOICES}/{voice['id']}").status_code == 404
        assert_error(client.post(SPEECH, json={"voice": "Night Narrator", "input": "Hi."}), 400, "voice")


def test_script_hint_is_what_the_voice_says(design_server: LiveServer) -> None:
    hint = "Welcome aboard. The night train leaves at nine."
    with design_server.client() as client:
        created = client.post(
            VOICES, json={"type": "prompt", "name": "Conductor", "prompt": DESCRIPTION, "script_hint": hint}
        )
        assert created.status_code == 200, created.text
        voice = created.json()
        assert voice["script"] == hint and voice["language"] == "Auto"  # as a speech request without one
        assert speak_saved(client, "Conductor").size > 0
        client.delete(f"{VOICES}/{voice['id']}")


def test_persistent_path_refusals(design_server: LiveServer) -> None:
    good = {"type": "prompt", "name": "Refused", "prompt": DESCRIPTION}
    cases = [
        ({**good, "prompt": "   "}, 400, "prompt"),
        ({key: value for key, value in good.items() if key != "prompt"}, 400, "prompt"),
        ({key: value for key, value in good.items() if key != "name"}, 400, "name"),
        ({**good, "type": "audio_sample"}, 400, "type"),
        ({**good, "language": "Klingon"}, 400, "language"),
        ({**good, "script_hint": "x" * 401}, 400, "script_hint"),
        ({**good, "script_hint": "  "}, 400, "script_hint"),
        ({**good, "name": "../etc"}, 400, "name"),
        ({**good, "name": "alloy"}, 409, "name"),
        ({**good, "name": "Design"}, 409, "name"),
    ]
    with design_server.client() as client:
        for body, status, param in cases:
            assert_error(client.post(VOICES, json=body), status, param)
        bad_json = client.post(VOICES, content=b"{not json", headers={"Content-Type": "application/json"})
        assert bad_json.status_code == 400
        assert not [v for v in client.get(VOICES).json()["voices"] if v["type"] != "preset"]


def test_designed_voice_metadata_is_checked_at_start_like_any_other(tmp_path: Path) -> None:
    """The scan at start reads a designed voice's type and description, and skips an entry
    whose type or description is not what the server writes; voices saved before designed
    voices existed (no type) read back as uploads."""
    from server.speech.voice_files import scan_library
    from tests.reliability.test_damaged_library import voice_id, write_voice

    good = write_voice(tmp_path, 1, "Designed", type="prompt", description=DESCRIPTION, language="English")
    older = write_voice(tmp_path, 2, "Older upload")
    write_voice(tmp_path, 3, "Odd type", type="banana")
    write_voice(tmp_path, 4, "Odd description", type="prompt", description=42)
    scan = scan_library(tmp_path)
    assert set(scan.voices) == {good, older}
    assert scan.voices[good].public()["type"] == "prompt"
    assert scan.voices[good].public()["description"] == DESCRIPTION
    assert scan.voices[older].public()["type"] == "audio_sample" and "description" not in scan.voices[older].public()
    skipped = {problem["file"]: problem["problem"] for problem in scan.problems}
    assert set(skipped) == {f"{voice_id(3)}.json", f"{voice_id(4)}.json"}
    assert "type" in skipped[f"{voice_id(3)}.json"] and "description" in skipped[f"{voice_id(4)}.json"]


def test_vllm_omni_task_type_voice_design_is_the_direct_path(design_server: LiveServer) -> None:
    """vLLM-Omni's clients ask with `task_type: VoiceDesign` and their own model and voice:
    the same described voice, the same audio for the same seed; a reference does not go with it."""
    omni_body = {
        "model": "tts-1",
        "voice": "alloy",
        "task_type": "VoiceDesign",
        "input": TEXT,
        "instructions": DESCRIPTION,
        "response_format": "pcm",
        "seed": 5,
    }
    with design_server.client() as client:
        assert np.array_equal(pcm_of(client, omni_body), pcm_of(client, design_body()))
        undescribed = client.post(SPEECH, json={**omni_body, "instructions": None})
        assert_error(undescribed, 400, "instructions", "missing_voice_description")
        with_reference = client.post(SPEECH, json={**omni_body, "ref_audio": "data:audio/wav;base64,AAAA"})
        assert_error(with_reference, 400, "ref_audio")
