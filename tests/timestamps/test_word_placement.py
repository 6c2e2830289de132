"""The arithmetic of word times, checked on synthetic aligner outputs (no weights needed):
the package's bins to seconds and its repair, then ours (speed, clamping, offsets), and the
word list against the package's own processor."""

from __future__ import annotations

import numpy as np
import pytest

from server.engine.slots.aligner import AlignedSpan, aligner_words
from server.engine.slots.asr_package import Qwen3ForceAlignProcessor
from server.speech.timestamps import Word, aligner_language, place_words

SEGMENT_MS = 80.0  # the released aligner's timestamp_segment_time


def package_spans(words: list[str], classes: list[int]) -> list[AlignedSpan]:
    """What Qwen3ForcedAligner.align makes of the classes predicted at the timestamp tokens:
    bins times the segment time in ms, the processor's repair, then seconds to the ms."""
    processor = Qwen3ForceAlignProcessor()
    ms = np.asarray(classes, dtype=np.float64) * SEGMENT_MS
    return [
        AlignedSpan(item["text"], round(item["start_time"] / 1000.0, 3), round(item["end_time"] / 1000.0, 3))
        for item in processor.parse_timestamp(words, ms)
    ]


def test_bins_become_seconds_of_80_ms() -> None:
    spans = package_spans(["one", "two", "three"], [0, 3, 4, 9, 10, 25])
    assert [(s.start, s.end) for s in spans] == [(0.0, 0.24), (0.32, 0.72), (0.8, 2.0)]


def test_the_package_repairs_an_out_of_order_bin() -> None:
    # The fourth value (bin 2) breaks the order; it is replaced from its neighbours.
    spans = package_spans(["a", "b", "c"], [1, 3, 5, 2, 7, 8])
    flat = [t for s in spans for t in (s.start, s.end)]
    assert flat == sorted(flat)
    assert (spans[0].start, spans[2].end) == (0.08, 0.64)


def test_place_words_offsets_scales_clamps_and_keeps_order() -> None:
    spans = [AlignedSpan("a", 0.0, 0.4), AlignedSpan("b", 0.4, 1.2), AlignedSpan("c", 1.1, 3.0)]
    words = place_words(spans, offset=10.0, speed=2.0, duration=1.0)
    # Halved by speed 2; c's start (0.55) comes before b's end (0.6): lifted; c's end (1.5) clamped to 1.0.
    assert words == (Word("a", 10.0, 10.2), Word("b", 10.2, 10.6), Word("c", 10.6, 11.0))


def test_place_words_repairs_any_inversion() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        raw = rng.uniform(-0.5, 4.0, size=(12, 2))
        spans = [AlignedSpan(f"w{i}", float(a), float(b)) for i, (a, b) in enumerate(raw)]
        duration = float(rng.uniform(0.5, 3.0))
        words = place_words(spans, offset=5.0, speed=float(rng.uniform(0.25, 4.0)), duration=duration)
        flat = [t for w in words for t in (w.start, w.end)]
        assert flat == sorted(flat)
        assert all(5.0 <= t <= 5.0 + duration for t in flat)
        assert [w.word for w in words] == [s.text for s in spans]


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Hello, world! It costs 3 dollars, doesn't it?", "English"),
        ("混合 text 你好世界 with CJK", "Chinese"),
        ("今日は良い天気ですね。", "Japanese"),
        ("안녕하세요, 반갑습니다.", "Korean"),
        ("... !!! ---", "English"),
    ],
)
def test_the_word_list_is_the_package_processors(text: str, language: str) -> None:
    words, prompt = Qwen3ForceAlignProcessor().encode_timestamp(text, language)
    assert aligner_words(text, language) == words
    if words:  # (with none, the prompt still ends in one pair: the server makes no call then)
        assert prompt.count("<timestamp>") == 2 * len(words)


def test_auto_language_follows_the_script() -> None:
    assert aligner_language("Auto", "今日は良い天気です") == "Japanese"
    assert aligner_language("Auto", "안녕하세요") == "Korean"
    assert aligner_language("Auto", "Hello there") == "English"
    assert aligner_language("German", "Guten Tag") == "German"
