"""The playground on a server with API keys and a model that ignores instructions: the key
field appears, the key is kept in session storage only and sent with every call, and the
instructions field is greyed out with a note."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from tests.support.browser import by_id, data, open_page, script_errors, wait_for
from tests.support.checkpoints import relabelled_as_small
from tests.support.live_server import LiveServer, live_server

pytestmark = pytest.mark.browser  # a headless Chromium drives the page

KEY = "playground-test-key"


@pytest.fixture(scope="module")
def restricted_server(custom_voice_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    small = relabelled_as_small(custom_voice_dir, tmp_path_factory.mktemp("ckpt06") / "custom_voice_0b6")
    with live_server(model_id=str(small), api_keys=KEY, preload_model=True, max_new_tokens=128) as server:
        yield server


@pytest.fixture
def restricted_page(browser: webdriver.Chrome, restricted_server: LiveServer) -> Iterator[webdriver.Chrome]:
    script_errors(browser)
    yield open_page(browser, restricted_server.base_url)
    assert script_errors(browser) == []


def test_the_key_field_appears_on_401_and_the_key_is_sent_from_session_storage(
    restricted_page: webdriver.Chrome,
) -> None:
    page = restricted_page
    key_field = by_id(page, "api-key")
    wait_for(page, lambda d: key_field.is_displayed())
    error = by_id(page, "error")
    assert data(error, "status") == "401"
    # Without a key the open voice list has the presets only.
    assert page.find_elements(By.CSS_SELECTOR, "#voice option")

    key_field.send_keys(KEY)
    by_id(page, "key-form").find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#voice option"))
    assert not error.is_displayed()
    assert page.execute_script("return sessionStorage.getItem('qwen3-tts-api-key')") == KEY
    assert page.execute_script("return localStorage.length") == 0

    by_id(page, "speak").click()
    result = by_id(page, "result")
    wait_for(page, lambda d: data(result, "state") in ("done", "error"))
    assert data(result, "state") == "done", error.text
    assert int(data(result, "samples")) > 0


def test_instructions_are_greyed_out_when_the_model_ignores_them(restricted_page: webdriver.Chrome) -> None:
    page = restricted_page
    # With API_KEYS set, the model's details in /health are for callers with a key.
    key_field = by_id(page, "api-key")
    wait_for(page, lambda d: key_field.is_displayed())
    key_field.clear()
    key_field.send_keys(KEY)
    by_id(page, "key-form").find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    # The panel refreshes until the preloaded model reports itself.
    wait_for(page, lambda d: not by_id(d, "instructions").is_enabled())
    assert "does not follow instructions" in by_id(page, "instructions-note").text
    row = page.find_element(By.CSS_SELECTOR, '#slots tr[data-slot="custom_voice"]')
    assert data(row, "status") == "loaded"
    assert "ignored" in row.text
    # This server has no DESIGN_MODEL_ID: the Design panel says how to turn it on, greyed out.
    design = by_id(page, "design")
    wait_for(page, lambda d: data(design, "enabled") == "false")
    assert "DESIGN_MODEL_ID" in by_id(page, "design-off").text
    assert not by_id(page, "design-preview").is_enabled() and not by_id(page, "design-save").is_enabled()
    # Nor ALIGNER_MODEL_ID: the word timestamps box is off, saying how to turn it on.
    wait_for(page, lambda d: "ALIGNER_MODEL_ID" in by_id(d, "timestamps-note").text)
    assert not by_id(page, "timestamps").is_enabled() and by_id(page, "stream-mode").is_enabled()
