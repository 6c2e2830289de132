"""A live server with the dev aligner (ALIGNER_MODEL_ID), shared by the word-timestamp tests,
and the checks every timed answer must pass."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from server.engine.slots.aligner import aligner_words
from server.speech.timestamps import aligner_language
from server.text.pieces import split_pieces
from tests.support.live_server import LiveServer, dev_settings, live_server

# Three sentences: words, a number, a contraction, and CJK characters (one unit each).
TEXT = "The quick brown fox jumps over the lazy dog. It costs 3 dollars, doesn't it? 你好世界。"
EPSILON = 0.0015  # times are rounded to the millisecond


@pytest.fixture(scope="package")
def timed_server(
    custom_voice_dir: Path, base_dir: Path, aligner_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    settings = dev_settings(custom_voice_dir, base_dir, tmp_path_factory.mktemp("voices"))
    with live_server(**settings, aligner_model_id=str(aligner_checkpoint)) as running:
        yield running


def sentences_of(text: str) -> tuple[str, ...]:
    return split_pieces(text, per_sentence=True)


def expected_words(segment_texts: Sequence[str], language: str = "Auto") -> list[str]:
    """The units the aligner's own processor makes of each segment, in order."""
    return [word for text in segment_texts for word in aligner_words(text, aligner_language(language, text))]


def check_segments(segments: list[dict[str, Any]], texts: Sequence[str], audio_seconds: float) -> None:
    """Segments back to back from 0 to the end of the audio, each with its own words, in
    order, inside it, times never going back."""
    assert [s["text"] for s in segments] == list(texts)
    assert [s["segment"] for s in segments] == list(range(len(texts)))
    assert segments[0]["start_time"] == 0.0
    for before, after in itertools.pairwise(segments):
        assert abs(after["start_time"] - before["end_time"]) <= EPSILON
    assert abs(segments[-1]["end_time"] - audio_seconds) <= EPSILON
    times: list[float] = []
    for segment in segments:
        assert "error" not in segment, segment
        words = segment["words"]
        assert [w["word"] for w in words] == expected_words([segment["text"]])
        for word in words:
            assert segment["start_time"] - EPSILON <= word["start_time"] <= word["end_time"]
            assert word["end_time"] <= segment["end_time"] + EPSILON
            times += [word["start_time"], word["end_time"]]
    assert times == sorted(times)
