"""/metrics on a live server: valid Prometheus text, and counters, histograms and gauges
that move as real requests happen."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.engine_control import inference_held, wait_until
from tests.support.live_server import LiveServer, live_server

SPEECH = "/v1/audio/speech"
BODY = {"model": "tts-1", "voice": "Ryan", "input": "One sentence here. And another one.", "response_format": "pcm"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(server: LiveServer) -> Samples:
    with server.client() as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):  # raises on malformed text
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_requests_are_counted_once_by_route_and_status(ops_server: LiveServer) -> None:
    before = scrape(ops_server)
    with ops_server.client() as client:
        assert client.post(SPEECH, json=BODY).status_code == 200
        assert client.post(SPEECH, json={"model": "tts-1"}).status_code == 400
        assert client.get("/no/such/path/123").status_code == 404
    after = scrape(ops_server)

    def delta(**labels: str) -> float:
        return value(after, "qwen3_tts_requests_total", **labels) - value(before, "qwen3_tts_requests_total", **labels)

    assert delta(endpoint=SPEECH, status="200") == 1
    assert delta(endpoint=SPEECH, status="400") == 1
    # Unmatched paths share one label, so random URLs cannot blow up the series count.
    assert delta(endpoint="unmatched", status="404") == 1
    assert not any("/no/such" in dict(labels).get("endpoint", "") for _, labels in after)


def test_speech_timings_audio_and_characters_are_observed(ops_server: LiveServer) -> None:
    before = scrape(ops_server)
    with ops_server.client() as client:
        response = client.post(SPEECH, json=BODY)
    assert response.status_code == 200
    # A request is observed once its last byte has been handed over, a moment after the client has it.
    counted = "qwen3_tts_request_seconds_count"
    wait_until(lambda: value(scrape(ops_server), counted, endpoint=SPEECH) > value(before, counted, endpoint=SPEECH))
    after = scrape(ops_server)
    for histogram in ("queue", "inference", "encode", "request"):
        name = f"qwen3_tts_{histogram}_seconds_count"
        assert value(after, name, endpoint=SPEECH) - value(before, name, endpoint=SPEECH) == 1, name
    audio = value(after, "qwen3_tts_audio_seconds_total") - value(before, "qwen3_tts_audio_seconds_total")
    assert abs(audio - len(response.content) / 2 / 24_000) < 0.01
    chars = value(after, "qwen3_tts_characters_total") - value(before, "qwen3_tts_characters_total")
    assert chars == len(BODY["input"])


def test_queue_gauges_are_live(ops_server: LiveServer) -> None:
    with ops_server.client() as client:  # the model is loaded (and stays: no idle unload here)
        assert client.post(SPEECH, json={**BODY, "input": "Hi."}).status_code == 200
    body = {**BODY, "input": " ".join(f"Sentence {i} is here." for i in range(3))}
    thread = threading.Thread(target=lambda: httpx.post(ops_server.base_url + SPEECH, json=body, timeout=120))
    with inference_held(ops_server):  # the request is admitted and cannot finish while we look
        thread.start()
        wait_until(lambda: ops_server.engine.depth == 1)
        seen = scrape(ops_server)
    thread.join()
    assert value(seen, "qwen3_tts_queue_depth") == 1
    assert value(seen, "qwen3_tts_in_flight_jobs", slot="custom_voice") == 1
    assert value(seen, "qwen3_tts_model_loaded", slot="custom_voice") == 1
    wait_until(lambda: value(scrape(ops_server), "qwen3_tts_queue_depth") == 0)
    idle = scrape(ops_server)
    assert value(idle, "qwen3_tts_in_flight_jobs", slot="custom_voice") == 0


def test_model_load_and_idle_unload_are_counted(custom_voice_dir: Path) -> None:
    with live_server(model_id=str(custom_voice_dir), idle_timeout=0.5, max_new_tokens=12) as server:
        fresh = scrape(server)
        assert value(fresh, "qwen3_tts_model_loaded", slot="custom_voice") == 0
        assert value(fresh, "qwen3_tts_model_loads_total", slot="custom_voice") == 0
        with server.client() as client:
            assert client.post(SPEECH, json={**BODY, "input": "Hi."}).status_code == 200
        wait_until(lambda: value(scrape(server), "qwen3_tts_model_loaded", slot="custom_voice") == 0)
        samples = scrape(server)
    assert value(samples, "qwen3_tts_model_loaded", slot="custom_voice") == 0
    assert value(samples, "qwen3_tts_model_loads_total", slot="custom_voice") == 1
    assert value(samples, "qwen3_tts_model_unloads_total", slot="custom_voice") == 1
    assert value(samples, "qwen3_tts_model_load_seconds_count", slot="custom_voice") == 1
    assert value(samples, "qwen3_tts_model_loads_total", slot="base") == 0


def test_metrics_disabled_is_404(custom_voice_dir: Path) -> None:
    with live_server(model_id=str(custom_voice_dir), metrics_enabled=False) as server, server.client() as client:
        assert client.get("/metrics").status_code == 404
        assert server.app.state.metrics is None
