"""The playground in headless Chromium: it loads cleanly, speaks over the PCM stream and
over SSE (the page's decoded samples equal the API's audio for the same seed), downloads
in the chosen format, and shows the server's error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from tests.support.audio import decode_av, decode_pcm16, decode_soundfile
from tests.support.browser import by_id, data, full_page_screenshot, wait_for, wait_for_file
from tests.support.engine_control import inference_held
from tests.support.live_server import LiveServer

pytestmark = pytest.mark.browser  # a headless Chromium drives the page

TEXT = "The playground speaks. It streams each sentence."
SEED = 1234


def fill(driver: webdriver.Chrome, element_id: str, value: str) -> None:
    element = by_id(driver, element_id)
    element.clear()
    element.send_keys(value)


def speak(driver: webdriver.Chrome, mode: str, text: str = TEXT, seed: int | None = SEED) -> dict[str, str]:
    """Speak through the page and wait until the stream has ended; the result's data."""
    fill(driver, "text", text)
    fill(driver, "seed", "" if seed is None else str(seed))
    Select(by_id(driver, "stream-mode")).select_by_value(mode)
    by_id(driver, "speak").click()
    result = by_id(driver, "result")
    wait_for(driver, lambda d: data(result, "state") in ("done", "error"))
    names = ("state", "playback", "mode", "samples", "chunks", "ttfa-ms", "total-ms", "request-id", "output-tokens")
    return {name: data(result, name) for name in names}


def api_pcm(server: LiveServer, text: str = TEXT, seed: int = SEED) -> bytes:
    """The same request the page makes, through the API directly."""
    body = {"model": "qwen3-tts", "input": text, "voice": "Vivian", "speed": 1, "seed": seed, "response_format": "pcm"}
    with server.client() as client:
        response = client.post("/v1/audio/speech", json=body)
    assert response.status_code == 200, response.text
    return response.content


def download(driver: webdriver.Chrome, folder: Path, fmt: str) -> bytes:
    for old in folder.iterdir():
        old.unlink()
    Select(by_id(driver, "format")).select_by_value(fmt)
    button = by_id(driver, "download")
    assert button.text == f"Download {fmt}"
    button.click()
    wait_for(driver, lambda d: data(button, "state") in ("saved", "error"))
    assert data(button, "state") == "saved", by_id(driver, "error").text
    path = wait_for_file(folder, f".{fmt}")
    assert path.name == f"speech.{fmt}"
    return path.read_bytes()


def test_page_loads_without_errors_and_shows_voices_and_server_state(page: webdriver.Chrome) -> None:
    assert page.current_url.endswith("/playground/")
    assert page.title == "Qwen3-TTS playground"
    groups = {
        group.get_attribute("label"): [o.get_attribute("value") for o in group.find_elements(By.TAG_NAME, "option")]
        for group in by_id(page, "voice").find_elements(By.TAG_NAME, "optgroup")
    }
    assert groups["Qwen speakers"][:2] == ["Vivian", "Serena"]
    assert "alloy" in groups["Mapped names"]
    assert by_id(page, "server-pill").get_attribute("data-status") == "ok"
    slots = {row.get_attribute("data-slot") for row in page.find_elements(By.CSS_SELECTOR, "#slots tbody tr")}
    assert slots == {"custom_voice", "base", "voice_design"}  # the playground server serves all three
    assert by_id(page, "char-count").text == f"{len(by_id(page, 'text').get_attribute('value'))} / 4,096"
    assert by_id(page, "key-form").is_displayed() is False  # the server has no keys


def test_speak_streams_pcm_plays_it_and_downloads_mp3(
    page: webdriver.Chrome, playground_server: LiveServer, downloads: Path, artifacts: Path
) -> None:
    result = speak(page, "audio")
    assert result["state"] == "done", by_id(page, "error").text
    expected = decode_pcm16(api_pcm(playground_server))
    assert int(result["samples"]) == expected.samples.shape[0] > 0
    assert 0 < int(result["ttfa-ms"]) <= int(result["total-ms"])
    assert int(result["chunks"]) >= 1
    assert by_id(page, "stat-samples").text == f"{expected.samples.shape[0]:,}"
    # Web Audio played all of it (the page marks the end when the last buffer has played).
    wait_for(page, lambda d: data(by_id(d, "result"), "playback") == "ended")
    # The request shows up in the server panel's latency table.
    wait_for(page, lambda d: data(by_id(d, "recent"), "count") not in ("", "0"))
    full_page_screenshot(page, artifacts / "playground-after-speaking.png")

    mp3 = decode_av(download(page, downloads, "mp3"))
    assert mp3.sample_rate == 24_000
    # Same seed, same audio: the encoder's padding aside, the lengths agree.
    assert abs(mp3.duration - expected.duration) < 0.1


def test_speak_over_sse_decodes_the_same_audio_and_downloads_wav(
    page: webdriver.Chrome, playground_server: LiveServer, downloads: Path
) -> None:
    result = speak(page, "sse")
    assert result["state"] == "done", by_id(page, "error").text
    assert result["mode"] == "sse"
    assert int(result["output-tokens"]) > 0
    expected = decode_pcm16(api_pcm(playground_server))
    assert int(result["samples"]) == expected.samples.shape[0]
    assert 0 < int(result["ttfa-ms"]) <= int(result["total-ms"])

    wav = decode_soundfile(download(page, downloads, "wav"))  # built by the page from what it received
    assert wav.sample_rate == 24_000
    assert wav.samples.shape == expected.samples.shape
    assert (wav.samples == expected.samples).all()


def test_api_errors_show_the_servers_message(page: webdriver.Chrome) -> None:
    result = speak(page, "audio", text=" ")
    assert result["state"] == "error"
    error = by_id(page, "error")
    assert error.is_displayed()
    assert data(error, "status") == "400"
    assert "input must contain text to speak" in error.text

    by_id(page, "text").send_keys("Fine text.")
    page.find_element(By.CSS_SELECTOR, "details.sampling summary").click()
    fill(page, "temperature", "5")
    by_id(page, "text").send_keys(Keys.CONTROL, Keys.ENTER)  # the keyboard shortcut speaks too
    wait_for(page, lambda d: "temperature" in by_id(d, "error").text)
    assert "less than or equal to 2" in error.text


def test_stop_abandons_the_request_on_the_server(page: webdriver.Chrome, playground_server: LiveServer) -> None:
    fill(page, "text", " ".join(f"Sentence {i} goes on for a while." for i in range(30)))
    by_id(page, "speak").click()
    result = by_id(page, "result")
    wait_for(page, lambda d: data(result, "ttfa-ms") != "" or data(result, "state") != "speaking")
    # Holding the inference thread keeps the rest of the text from being synthesised, so the
    # stream is still open when Stop is pressed however fast the machine is.
    with inference_held(playground_server):
        assert data(result, "state") == "speaking"
        by_id(page, "stop").click()
        wait_for(page, lambda d: data(result, "state") != "speaking")
    assert data(result, "state") == "stopped"
    assert not by_id(page, "error").is_displayed()
    request_id = data(result, "request-id")
    # The server notices the closed connection and records the request as abandoned (499).
    with playground_server.client() as client:

        def recorded(_: webdriver.Chrome) -> dict[str, Any] | None:
            entries = client.get("/v1/requests/recent").json()["data"]
            return next((entry for entry in entries if entry["request_id"] == request_id), None)

        entry = wait_for(page, recorded)
    assert entry["status"] == 499
    assert entry["segments_done"] < entry["segments"]
    wait_for(page, lambda d: "499" in by_id(d, "recent").text)


def test_the_character_count_warns_past_the_limit_and_the_server_refuses(page: webdriver.Chrome) -> None:
    page.execute_script(
        "const text = document.getElementById('text');"
        "text.value = 'a'.repeat(4097); text.dispatchEvent(new Event('input'));"
    )
    counter = by_id(page, "char-count")
    assert counter.text == "4,097 / 4,096"
    assert "over" in counter.get_attribute("class")
    by_id(page, "speak").click()
    wait_for(page, lambda d: data(by_id(d, "result"), "state") == "error")
    assert "at most 4096 characters" in by_id(page, "error").text
