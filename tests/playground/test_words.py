"""Word timestamps in the playground: with the server's aligner on, the page asks for them
over SSE, shows the words the API times for the same seed, and lights each one up as
playback reaches it; the highlighting itself is checked on set positions in the browser."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from httpx_sse import connect_sse
from selenium import webdriver

from tests.playground.test_speak import SEED, TEXT, download, fill
from tests.support.audio import decode_av, decode_pcm16
from tests.support.browser import by_id, data, wait_for
from tests.support.live_server import LiveServer

pytestmark = pytest.mark.browser  # a headless Chromium drives the page

RECORD_CURRENT = """
const words = document.getElementById("words");
window.currentSeen = [];
new MutationObserver(() => window.currentSeen.push(Number(words.dataset.current)))
  .observe(words, {attributes: true, attributeFilter: ["data-current"]});
"""


def api_words(server: LiveServer) -> tuple[list[dict[str, Any]], int]:
    """The words the API's own SSE stream times for the page's request, and its sample count."""
    body = {"model": "qwen3-tts", "input": TEXT, "voice": "Vivian", "speed": 1, "seed": SEED, "timestamps": True}
    words: list[dict[str, Any]] = []
    audio = b""
    with (
        server.client() as client,
        connect_sse(
            client, "POST", "/v1/audio/speech", json={**body, "response_format": "pcm", "stream_format": "sse"}
        ) as source,
    ):
        assert source.response.status_code == 200
        for event in (json.loads(sse.data) for sse in source.iter_sse()):
            if event["type"] == "speech.audio.timestamps":
                words += event["words"]
            elif event["type"] == "speech.audio.delta":
                audio += base64.b64decode(event["audio"])
    return words, decode_pcm16(audio).samples.shape[0]


def test_the_words_of_the_speech_light_up_in_order_and_the_download_has_the_audio(
    page: webdriver.Chrome, playground_server: LiveServer, downloads: Path
) -> None:
    box = by_id(page, "timestamps")
    wait_for(page, lambda d: box.is_enabled())
    box.click()
    assert not by_id(page, "stream-mode").is_enabled()
    assert by_id(page, "stream-mode").get_attribute("value") == "sse"
    fill(page, "text", TEXT)
    fill(page, "seed", str(SEED))
    page.execute_script(RECORD_CURRENT)
    by_id(page, "speak").click()
    result = by_id(page, "result")
    wait_for(page, lambda d: data(result, "state") in ("done", "error"))
    assert data(result, "state") == "done", by_id(page, "error").text
    assert data(result, "mode") == "sse"

    expected_words, samples = api_words(playground_server)
    assert int(data(result, "samples")) == samples
    spans = page.execute_script(
        "return [...document.querySelectorAll('#words .word')].map(s => [s.textContent, Number(s.dataset.start)])"
    )
    assert spans == [[word["word"], word["start_time"]] for word in expected_words]
    words = by_id(page, "words")
    assert data(words, "errors") == "0" and int(data(words, "count")) == len(expected_words) > 0

    wait_for(page, lambda d: data(result, "playback") == "ended")
    wait_for(page, lambda d: data(words, "current") == str(len(expected_words) - 1))
    classes = page.execute_script("return [...document.querySelectorAll('#words .word')].map(s => s.className)")
    assert all("spoken" in names for names in classes) and classes[-1].endswith("current")
    seen = [index for index in page.execute_script("return window.currentSeen") if index >= 0]
    assert seen == sorted(seen) and seen[-1] == len(expected_words) - 1  # never backwards

    # The file has no place for words: the download asks for the audio alone.
    mp3 = decode_av(download(page, downloads, "mp3"))
    assert abs(mp3.duration - samples / 24_000) < 0.1


WORD_TRACK = """
const done = arguments[arguments.length - 1];
import("./js/words.js").then(({ WordTrack }) => {
  const element = document.createElement("p");
  const track = new WordTrack(element);
  track.addSegment({segment: 0, text: "One two three.", start_time: 0, end_time: 0.9, words: [
    {word: "One", start_time: 0.0, end_time: 0.2},
    {word: "two", start_time: 0.2, end_time: 0.5},
    {word: "three", start_time: 0.5, end_time: 0.9}]});
  track.addSegment({segment: 1, text: "Four.", start_time: 0.9, end_time: 1.4, words: [],
    error: "the aligner failed: boom"});
  const at = (seconds) => {
    track.setPosition(seconds);
    return [element.dataset.current, [...element.querySelectorAll(".spoken")].map((s) => s.textContent),
            element.querySelector(".current")?.textContent ?? null];
  };
  done({positions: [-0.1, 0.0, 0.3, 0.3, 0.1, 5].map(at), count: element.dataset.count,
        errors: element.dataset.errors, untimed: element.querySelector(".untimed").title,
        hidden: element.hidden});
}).catch((error) => done({error: String(error)}));
"""


def test_a_word_is_spoken_from_its_start_and_untimed_segments_say_why(page: webdriver.Chrome) -> None:
    outcome = page.execute_async_script(WORD_TRACK)
    assert "error" not in outcome, outcome
    assert outcome["positions"] == [
        ["-1", [], None],
        ["0", ["One"], "One"],
        ["1", ["One", "two"], "two"],
        ["1", ["One", "two"], "two"],
        ["0", ["One"], "One"],  # seeking back un-speaks
        ["2", ["One", "two", "three"], "three"],
    ]
    assert (outcome["count"], outcome["errors"], outcome["hidden"]) == ("3", "1", False)
    assert outcome["untimed"] == "not timed: the aligner failed: boom"
