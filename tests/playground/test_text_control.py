"""The playground's pronunciation list and SSML example in headless Chromium: the page sends
its rows as the request's pronunciations, and speaks the example document, each to the same
audio as the API gives for the same request."""

from __future__ import annotations

from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from tests.playground.test_speak import speak
from tests.support.audio import decode_pcm16
from tests.support.browser import by_id
from tests.support.live_server import LiveServer

pytestmark = pytest.mark.browser  # a headless Chromium drives the page

SEED = 77


def api_samples(server: LiveServer, text: str, **fields: Any) -> int:
    body = {"model": "qwen3-tts", "input": text, "voice": "Vivian", "speed": 1, "seed": SEED, "response_format": "pcm"}
    with server.client() as client:
        response = client.post("/v1/audio/speech", json={**body, **fields})
    assert response.status_code == 200, response.text
    return decode_pcm16(response.content).samples.shape[0]


def test_pronunciation_rows_are_sent_with_the_request(page: webdriver.Chrome, playground_server: LiveServer) -> None:
    page.find_element(By.CSS_SELECTOR, "details.pronunciations summary").click()
    by_id(page, "pronunciation-add").click()
    by_id(page, "pronunciation-add").click()  # an empty row is left out
    row = page.find_elements(By.CSS_SELECTOR, "#pronunciation-list tr.pronunciation")[0]
    row.find_element(By.CSS_SELECTOR, '[data-field="text"]').send_keys("Nguyen")
    row.find_element(By.CSS_SELECTOR, '[data-field="alias"]').send_keys("Win the great")
    text = "Doctor Nguyen is here."
    result = speak(page, "audio", text=text, seed=SEED)
    assert result["state"] == "done", by_id(page, "error").text
    entries = [{"text": "Nguyen", "alias": "Win the great"}]
    assert int(result["samples"]) == api_samples(playground_server, text, pronunciations=entries)
    assert api_samples(playground_server, text, pronunciations=entries) == api_samples(
        playground_server, "Doctor Win the great is here."
    )
    row.find_element(By.CSS_SELECTOR, "button.remove").click()
    assert len(page.find_elements(By.CSS_SELECTOR, "#pronunciation-list tr.pronunciation")) == 1


def test_the_ssml_example_speaks(page: webdriver.Chrome, playground_server: LiveServer) -> None:
    page.find_element(By.CSS_SELECTOR, "details.pronunciations summary").click()
    by_id(page, "ssml-example").click()
    example = by_id(page, "text").get_attribute("value") or ""
    assert example.startswith("<speak")
    result = speak(page, "audio", text=example, seed=SEED)
    assert result["state"] == "done", by_id(page, "error").text
    assert int(result["samples"]) == api_samples(playground_server, example)
