"""Saved voices through the playground: created from an uploaded reference and from the
(fake) microphone, listed, spoken with, and deleted."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

from tests.support.browser import by_id, data, full_page_screenshot, wait_for
from tests.support.live_server import LiveServer
from tests.support.reference import wav

pytestmark = pytest.mark.browser  # a headless Chromium drives the page


def saved_item(driver: webdriver.Chrome, name: str) -> WebElement:
    selector = f'#saved-voices li[data-voice-name="{name}"]'
    return wait_for(driver, lambda d: next(iter(d.find_elements(By.CSS_SELECTOR, selector)), None))


def save_voice(driver: webdriver.Chrome, name: str, transcript: str) -> WebElement:
    by_id(driver, "voice-name").send_keys(name)
    by_id(driver, "voice-ref-text").send_keys(transcript)
    by_id(driver, "voice-consent").click()
    by_id(driver, "voice-save").click()
    return saved_item(driver, name)


def test_uploaded_voice_is_listed_selected_speaks_and_is_deleted(
    page: webdriver.Chrome, playground_server: LiveServer, tmp_path: Path, artifacts: Path
) -> None:
    reference = tmp_path / "reference.wav"
    reference.write_bytes(wav(seconds=2.0))
    by_id(page, "voice-file").send_keys(str(reference))
    assert data(by_id(page, "reference-summary"), "source") == "file"
    item = save_voice(page, "Narrator", "A short reference recording.")
    voice_id = data(item, "voice-id")
    assert voice_id.startswith("voice_")
    assert "saved" in by_id(page, "voice-message").text.lower()
    # The new voice is chosen in the picker, under its own group, and instructions are
    # greyed out: saved voices run on the Base model.
    assert by_id(page, "voice").get_attribute("value") == voice_id
    assert page.find_element(By.CSS_SELECTOR, f'optgroup[label="Saved voices"] option[value="{voice_id}"]')
    assert not by_id(page, "instructions").is_enabled()
    assert "Base model" in by_id(page, "instructions-note").text

    item.find_element(By.CSS_SELECTOR, 'button[data-action="sample"]').click()
    result = by_id(page, "result")
    wait_for(page, lambda d: data(result, "state") in ("done", "error"))
    assert data(result, "state") == "done", by_id(page, "error").text
    assert int(data(result, "samples")) > 0
    assert data(result, "instructions-ignored") == "false"  # none were sent
    wait_for(page, lambda d: data(by_id(d, "result"), "playback") == "ended")
    wait_for(page, lambda d: d.find_elements(By.CSS_SELECTOR, '#slots tr[data-slot="base"][data-status="loaded"]'))
    full_page_screenshot(page, artifacts / "playground-saved-voice.png")
    with playground_server.client() as client:
        assert client.get(f"/v1/audio/voices/{voice_id}").json()["name"] == "Narrator"

    item.find_element(By.CSS_SELECTOR, 'button[data-action="delete"]').click()
    page.switch_to.alert.accept()
    wait_for(page, lambda d: data(by_id(d, "saved-voices"), "count") == "0")
    with playground_server.client() as client:
        assert client.get(f"/v1/audio/voices/{voice_id}").status_code == 404
    assert by_id(page, "instructions").is_enabled()  # back on a preset voice


def test_voice_recorded_from_the_microphone_is_saved(page: webdriver.Chrome, playground_server: LiveServer) -> None:
    record = by_id(page, "record")
    summary = by_id(page, "reference-summary")
    record.click()
    wait_for(page, lambda d: data(record, "recording") == "true")
    # Chromium's fake microphone plays a beep; keep recording past the server's 1 s minimum.
    wait_for(page, lambda d: int(data(summary, "recorded-ms") or 0) >= 1600)
    record.click()
    wait_for(page, lambda d: data(summary, "source") == "recording")
    assert summary.text.startswith("Reference: recording.")
    item = save_voice(page, "Microphone", "")
    voice_id = data(item, "voice-id")
    with playground_server.client() as client:
        saved = client.get(f"/v1/audio/voices/{voice_id}").json()
        assert saved["mode"] == "x_vector"  # no transcript given
        assert client.delete(f"/v1/audio/voices/{voice_id}").status_code == 200


def test_a_refused_voice_shows_the_servers_message(page: webdriver.Chrome, tmp_path: Path) -> None:
    reference = tmp_path / "short.wav"
    reference.write_bytes(wav(seconds=0.3))  # under MIN_REFERENCE_SECONDS
    by_id(page, "voice-file").send_keys(str(reference))
    by_id(page, "voice-name").send_keys("Too short")
    by_id(page, "voice-consent").click()
    by_id(page, "voice-save").click()
    error = by_id(page, "voice-error")
    wait_for(page, lambda d: error.is_displayed())
    assert data(error, "status") == "400"
    assert "at least 1 s is required" in error.text
    assert data(by_id(page, "saved-voices"), "count") == "0"
