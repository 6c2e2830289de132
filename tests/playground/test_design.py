"""The Design panel: a described voice previewed through the design model, saved as a voice
(listed as designed, selected, spoken by the Base model), and the panel's own errors; on a
server without the design model the panel says how to turn it on."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from tests.playground.test_voices import saved_item
from tests.support.browser import by_id, data, full_page_screenshot, wait_for
from tests.support.live_server import LiveServer

pytestmark = pytest.mark.browser  # a headless Chromium drives the page

DESCRIPTION = "A warm, low voice, speaking slowly and close to the microphone."


def wait_until_spoken(page: webdriver.Chrome) -> None:
    result = by_id(page, "result")
    wait_for(page, lambda d: data(result, "state") in ("done", "error"))
    assert data(result, "state") == "done", by_id(page, "error").text
    assert int(data(result, "samples")) > 0


def test_preview_then_save_a_designed_voice(
    page: webdriver.Chrome, playground_server: LiveServer, artifacts: Path
) -> None:
    wait_for(page, lambda d: data(by_id(d, "design"), "enabled") == "true")
    assert not by_id(page, "design-off").is_displayed()

    by_id(page, "design-save").click()  # nothing described yet: the panel says so, no request
    assert "Describe the voice" in by_id(page, "design-error").text

    by_id(page, "design-description").send_keys(DESCRIPTION)
    by_id(page, "design-language").send_keys("English")
    by_id(page, "design-preview").click()
    wait_until_spoken(page)
    assert not by_id(page, "design-error").is_displayed()
    assert "Preview" in by_id(page, "result-note").text
    with playground_server.client() as client:
        [last, *_] = client.get("/v1/requests/recent").json()["data"]
    assert last["voice"] == "design" and last["status"] == 200
    wait_for(
        page, lambda d: d.find_elements(By.CSS_SELECTOR, '#slots tr[data-slot="voice_design"][data-status="loaded"]')
    )

    by_id(page, "design-name").send_keys("Night narrator")
    by_id(page, "design-script").send_keys("Welcome aboard. The night train leaves at nine.")
    by_id(page, "design-save").click()
    item = saved_item(page, "Night narrator")
    voice_id = data(item, "voice-id")
    assert data(item, "voice-type") == "prompt" and DESCRIPTION in item.text
    assert "Saved" in by_id(page, "design-message").text
    assert by_id(page, "voice").get_attribute("value") == voice_id
    with playground_server.client() as client:
        voice = client.get(f"/v1/audio/voices/{voice_id}").json()
    assert voice["type"] == "prompt" and voice["description"] == DESCRIPTION and voice["language"] == "English"

    # Spoken like any saved voice: the Base model, from the designed reference.
    item.find_element(By.CSS_SELECTOR, 'button[data-action="sample"]').click()
    wait_until_spoken(page)
    full_page_screenshot(page, artifacts / "playground-design.png")

    # The same name again: the server's 409, shown in the panel.
    by_id(page, "design-name").send_keys("Night narrator")
    by_id(page, "design-save").click()
    wait_for(page, lambda d: by_id(d, "design-error").is_displayed())
    assert "409" in by_id(page, "design-error").text

    item.find_element(By.CSS_SELECTOR, 'button[data-action="delete"]').click()
    page.switch_to.alert.accept()
    wait_for(page, lambda d: data(by_id(d, "saved-voices"), "count") == "0")
