"""Words of different scripts written together (no space between them, or only punctuation
the aligner drops) come back as separate words in the captioned answer: the aligner's word
splitting follows the text's scripts, not the detected language alone."""

from __future__ import annotations

import unicodedata

import pytest

from server.engine.slots.aligner import aligner_words
from server.text import separate_scripts
from tests.support.live_server import LiveServer

MIXED = "안녕하세요。Привет、مرحبا。שלום"


@pytest.mark.parametrize(
    ("text", "separated"),
    [
        (MIXED, "안녕하세요。 Привет、 مرحبا。 שלום"),
        ("Hello世界", "Hello 世界"),
        ("日本語のテキストです", "日本語のテキストです"),  # Han and kana: one script for words
        ("abc3Привет", "abc3 Привет"),
        ("mp3 και 3.5 λεπτά", "mp3 και 3.5 λεπτά"),  # already spaced, digits join either side
        ("don't stop", "don't stop"),
        ("", ""),
    ],
)
def test_a_change_of_script_is_a_word_boundary(text: str, separated: str) -> None:
    assert separate_scripts(text) == separated


@pytest.mark.parametrize("language", ["English", "Russian"])
def test_the_aligner_splits_mixed_scripts_into_their_words(language: str) -> None:
    assert aligner_words(MIXED, language) == ["안녕하세요", "Привет", "مرحبا", "שלום"]


def test_the_korean_splitter_splits_its_own_script_only() -> None:
    """soynlp cuts a Korean word into its stem and ending; the other scripts stay words."""
    assert aligner_words(MIXED, "Korean") == ["안녕", "하세요", "Привет", "مرحبا", "שלום"]


def test_captioned_words_of_mixed_scripts_are_not_glued(timed_server: LiveServer) -> None:
    body = {"input": MIXED, "voice": "alloy", "response_format": "pcm", "seed": 3, "stream": False}
    with timed_server.client() as client:
        response = client.post("/v1/audio/speech/captioned", json=body)
    assert response.status_code == 200, response.text
    words = [word["word"] for word in response.json()["timestamps"]]
    # Every letter once, in order, and no word of two scripts ("안녕하세요Приветمرحباשלום"
    # was one word). (The Korean sentence may be cut into stem and ending by soynlp.)
    assert "".join(words) == "".join(ch for ch in MIXED if ch.isalpha())
    assert all(len({unicodedata.name(ch).split()[0] for ch in word}) == 1 for word in words), words
    assert words[-3:] == ["Привет", "مرحبا", "שלום"]
