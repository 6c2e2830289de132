"""Sentences from streamed text deltas."""

from __future__ import annotations

import random

import pytest

from server.text import split_sentences
from server.text.incremental import SentenceAccumulator

TEXTS = [
    "Hello there. How are you today? I am fine!",
    "Dr. Smith paid 3.50 dollars. That was approx. five cents too much... Wait, what?",
    "A list:\nfirst line continues here.\nSecond line is new.\n\nand a paragraph after a blank line.",
    "你好。今天天气很好！我们去公园吧？",
    "He said “Stop.” Then he left. The U.S. Senate met on Jan. 5. No. 7 won.",
    " ".join(["word"] * 150) + ". Short one.",  # an over-long sentence is split like split_sentences does
]


def feed_all(pieces: list[str]) -> tuple[list[str], list[list[str]]]:
    acc = SentenceAccumulator()
    released = [acc.feed(piece) for piece in pieces]
    return [s for batch in released for s in batch] + acc.flush(), released


@pytest.mark.parametrize("text", TEXTS)
def test_any_split_into_deltas_gives_the_sentences_of_the_whole_text(text: str) -> None:
    rng = random.Random(7)
    for _ in range(5):
        cuts = sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, rng.randint(1, 40))))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        sentences, _ = feed_all(pieces)
        assert sentences == split_sentences(text)
    # One character at a time, the way a slow token stream might arrive.
    assert feed_all(list(text))[0] == split_sentences(text)


def test_a_sentence_is_released_when_the_next_one_begins() -> None:
    acc = SentenceAccumulator()
    assert acc.feed("Hello there") == []
    assert acc.feed(".") == []  # "there." might still be "there.5" or "there. and"
    assert acc.feed(" ") == []
    assert acc.feed("How") == ["Hello there."]
    assert acc.pending.strip() == "How"
    assert acc.feed(" are you?") == []
    assert acc.flush() == ["How are you?"]
    assert acc.pending == ""


def test_abbreviations_and_decimals_are_not_boundaries() -> None:
    acc = SentenceAccumulator()
    assert acc.feed("Dr. ") == []
    assert acc.feed("Smith paid 3.") == []
    assert acc.feed("5 dollars. ") == []
    assert acc.feed("Then") == ["Dr. Smith paid 3.5 dollars."]


def test_a_lower_case_line_continues_the_sentence() -> None:
    acc = SentenceAccumulator()
    assert acc.feed("First line\n") == []
    assert acc.feed("continues. Next") == ["First line continues."]


def test_cjk_sentences_need_no_space() -> None:
    acc = SentenceAccumulator()
    assert acc.feed("你好。") == []
    assert acc.feed("今天") == ["你好。"]
    assert acc.flush() == ["今天"]


def test_symbols_alone_are_never_a_sentence() -> None:
    acc = SentenceAccumulator()
    assert acc.feed("... ") == []
    assert acc.feed("— ") == []
    assert acc.flush() == []
