"""The sampling extensions (temperature, top_p, top_k, repetition_penalty, max_new_tokens)
reach the sampler: each changes the audio the way it should, on the real dev checkpoints."""

from __future__ import annotations

from typing import Any

import numpy as np

from tests.http.test_clone import clone
from tests.support.audio import decode_pcm16
from tests.support.live_server import LiveServer, RecordCollector
from tests.support.reference import wav

BODY = {"model": "tts-1", "voice": "alloy", "input": "Sampling reaches the model.", "response_format": "pcm"}
FRAME = 1920


def speak(server: LiveServer, **fields: Any) -> bytes:
    with server.client() as client:
        response = client.post("/v1/audio/speech", json={**BODY, "stream": False, **fields})
    assert response.status_code == 200, response.text
    return response.content


def test_temperature_zero_is_greedy_and_repeatable_without_a_seed(server: LiveServer) -> None:
    first = speak(server, temperature=0)
    assert first == speak(server, temperature=0)
    assert decode_pcm16(first).rms > 1e-4


def test_top_k_one_equals_greedy_in_both_stages(server: LiveServer) -> None:
    # Keeping only the most likely token is argmax; equal PCM proves top_k reached codebook 0
    # and the code predictor alike.
    assert speak(server, top_k=1, temperature=0.7) == speak(server, temperature=0)


def test_sampling_fields_change_seeded_audio(server: LiveServer) -> None:
    seeded = speak(server, seed=5)
    assert seeded == speak(server, seed=5)
    assert speak(server, seed=5, temperature=1.5) != seeded
    assert speak(server, seed=5, top_p=0.5) != seeded


def test_max_new_tokens_caps_each_piece(server: LiveServer) -> None:
    # At most max_new_tokens - 1 frames: the last sample is the end-of-speech decision.
    capped = decode_pcm16(speak(server, max_new_tokens=6, seed=1))
    assert 0 < capped.samples.shape[0] <= 5 * FRAME
    uncapped = decode_pcm16(speak(server, seed=1))
    assert uncapped.samples.shape[0] > capped.samples.shape[0]


def test_sampling_is_logged(server: LiveServer, request_log: RecordCollector) -> None:
    # The dev checkpoint's random codes never repeat, so the penalty's effect on audio cannot
    # show here; the sampler's own tests check it against the package's processors.
    body = {**BODY, "stream": False, "temperature": 0.5, "top_k": 7, "repetition_penalty": 1.3, "max_new_tokens": 40}
    with server.client() as client:
        response = client.post("/v1/audio/speech", json=body, headers={"X-Request-ID": "sampling-logged"})
    assert response.status_code == 200, response.text
    # This request's own line: an earlier test's line can still be written once this one runs.
    line = request_log.wait_for_request("sampling-logged")
    assert line["sampling"] == {"temperature": 0.5, "top_k": 7, "repetition_penalty": 1.3}
    assert line["max_new_tokens"] == 40


def test_clone_form_takes_the_sampling_fields(server: LiveServer) -> None:
    reference = wav(seed=50)
    greedy = clone(server, reference, response_format="pcm", temperature="0")
    assert greedy.status_code == 200, greedy.text
    again = clone(server, reference, response_format="pcm", top_k="1")
    assert again.status_code == 200, again.text
    assert np.array_equal(decode_pcm16(greedy.content).samples, decode_pcm16(again.content).samples)
