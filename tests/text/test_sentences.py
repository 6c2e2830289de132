import importlib.util
import random
import re

import pytest

from server.text import MAX_SENTENCE_CHARS, split_sentences


def alnum(text: str) -> str:
    """Letters and digits only: what must survive splitting, in order."""
    return "".join(ch for ch in text if ch.isalnum())


def test_default_max_chars() -> None:
    assert MAX_SENTENCE_CHARS == 300


def test_simple_sentences() -> None:
    assert split_sentences("Hello there. How are you? Fine!") == [
        "Hello there.",
        "How are you?",
        "Fine!",
    ]


def test_abbreviations_decimals_and_initialisms() -> None:
    text = "Dr. Smith paid $3.14 for the U.S.A. flag. It was cheap!"
    assert split_sentences(text) == [
        "Dr. Smith paid $3.14 for the U.S.A. flag.",
        "It was cheap!",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Mr. Brown met Mrs. Green and Ms. White.",
        "Prof. Plum lives on St. James street.",
        "It was Lakers vs. Celtics tonight.",
        "Bring fruit, e.g. Apples or pears.",
        "Use a tool, i.e. A hammer.",
        "Apples, pears, etc. are fruit.",
        "The U.K. Parliament voted.",
        "The U.S. Senate voted.",
        "J. R. R. Tolkien wrote books.",
        "See No. 5 on page 3.",
        "Pi is 3.14159 roughly.",
        "Visit example.com today.",
    ],
)
def test_no_split_inside_a_sentence(text: str) -> None:
    assert split_sentences(text) == [text]


def test_abbreviation_that_may_end_a_sentence() -> None:
    assert split_sentences("I like apples, pears, etc. Then I left.") == [
        "I like apples, pears, etc.",
        "Then I left.",
    ]


def test_pronoun_i_is_not_an_initial() -> None:
    assert split_sentences("So do I. Then we met.") == ["So do I.", "Then we met."]


def test_number_prefix_only_before_digits() -> None:
    assert split_sentences("I said no. Maybe later.") == ["I said no.", "Maybe later."]


def test_ellipsis() -> None:
    assert split_sentences("Wait... what?") == ["Wait... what?"]
    assert split_sentences("I waited... Then she came.") == [
        "I waited...",
        "Then she came.",
    ]
    assert split_sentences("Well… maybe… I don't know.") == [
        "Well… maybe…",
        "I don't know.",
    ]


def test_closing_quotes_stay_with_their_sentence() -> None:
    assert split_sentences('He said "Stop!" Then he left.') == [
        'He said "Stop!"',
        "Then he left.",
    ]
    assert split_sentences("(It rained.) We stayed in.") == [
        "(It rained.)",
        "We stayed in.",
    ]
    assert split_sentences("“Go.” “Now?”") == ["“Go.”", "“Now?”"]


def test_quote_followed_by_lowercase_continues() -> None:
    assert split_sentences('"Stop!" he said.') == ['"Stop!" he said.']


def test_multiple_terminal_marks() -> None:
    assert split_sentences("Really?! Yes!!! Ok.") == ["Really?!", "Yes!!!", "Ok."]


def test_spanish_inverted_marks() -> None:
    assert split_sentences("¿Qué pasa? ¡Nada!") == ["¿Qué pasa?", "¡Nada!"]


def test_cjk_sentences_need_no_space() -> None:
    assert split_sentences("你好。今天天气很好！我们走吧？") == [
        "你好。",
        "今天天气很好！",
        "我们走吧？",
    ]


def test_cjk_closing_brackets_stay() -> None:
    assert split_sentences("他说：「走吧。」我们就走了。") == [
        "他说：「走吧。」",
        "我们就走了。",
    ]


def test_japanese_and_mixed_scripts() -> None:
    assert split_sentences("こんにちは。元気ですか？") == [
        "こんにちは。",
        "元気ですか？",
    ]
    assert split_sentences("Hello!你好。") == ["Hello!", "你好。"]


def test_newlines_and_paragraphs_are_boundaries() -> None:
    text = "Title\nFirst line\n\nSecond paragraph.\r\nThird line"
    assert split_sentences(text) == [
        "Title",
        "First line",
        "Second paragraph.",
        "Third line",
    ]


def test_hard_wrapped_lines_are_joined() -> None:
    text = "This sentence was wrapped\nin the middle. Next one.\n\nnew paragraph"
    assert split_sentences(text) == [
        "This sentence was wrapped in the middle.",
        "Next one.",
        "new paragraph",
    ]


def test_whitespace_is_trimmed_and_collapsed() -> None:
    assert split_sentences("  Hello   there.\t\tBye.  ") == ["Hello there.", "Bye."]


@pytest.mark.parametrize("text", ["", "   ", "\n\n", "...", "!?", " — ", "。。"])
def test_empty_and_punctuation_only_input(text: str) -> None:
    assert split_sentences(text) == []


def test_punctuation_only_pieces_are_dropped() -> None:
    assert split_sentences("Hello.\n...\n!!!\nWorld.") == ["Hello.", "World."]


def test_long_sentence_splits_at_clauses() -> None:
    clause = "the quick brown fox jumps over the lazy dog"
    text = ", ".join([clause] * 10) + "."
    pieces = split_sentences(text, max_chars=100)
    assert all(len(p) <= 100 for p in pieces)
    assert len(pieces) > 1
    # Every cut is right after a comma, never mid-clause.
    assert all(p.endswith((",", ".")) for p in pieces)
    assert " ".join(pieces) == text


@pytest.mark.parametrize("mark", [";", ":", " —", " –", " -"])
def test_other_clause_marks(mark: str) -> None:
    text = f"{'a' * 30}{mark} {'b' * 30}{mark} {'c' * 30}"
    pieces = split_sentences(text, max_chars=40)
    assert pieces == [f"{'a' * 30}{mark}", f"{'b' * 30}{mark}", "c" * 30]


def test_numbers_and_ranges_are_not_clause_boundaries() -> None:
    text = "We counted 1,000,000 stars at 3:45 in 1990–2000 " + "x" * 20
    pieces = split_sentences(text, max_chars=40)
    assert all(len(p) <= 40 for p in pieces)
    joined = " ".join(pieces)
    for token in ("1,000,000", "3:45", "1990–2000"):
        assert token in joined


def test_cjk_long_sentence_splits_at_cjk_commas() -> None:
    text = "，".join(["我们今天去公园散步"] * 10) + "。"
    pieces = split_sentences(text, max_chars=30)
    assert all(len(p) <= 30 for p in pieces)
    assert all(p.endswith(("，", "。")) for p in pieces)
    assert "".join(pieces) == text


def test_cjk_without_punctuation_splits_between_characters() -> None:
    text = "好" * 100
    pieces = split_sentences(text, max_chars=30)
    assert [len(p) for p in pieces] == [30, 30, 30, 10]


def test_thousand_chars_without_punctuation() -> None:
    text = " ".join(f"word{i}" for i in range(200))
    assert len(text) > 1000
    pieces = split_sentences(text)
    assert all(len(p) <= MAX_SENTENCE_CHARS for p in pieces)
    assert len(pieces) >= 4
    assert " ".join(pieces).split() == text.split()


def test_long_word_is_split_hard() -> None:
    pieces = split_sentences("x" * 25 + " y", max_chars=10)
    assert pieces == ["x" * 10, "x" * 10, "x" * 5 + " y"]


def test_max_chars_must_be_positive() -> None:
    with pytest.raises(ValueError):
        split_sentences("Hello.", max_chars=0)


CORPUS = [
    "Dr. Smith paid $3.14 for the U.S.A. flag. It was cheap!",
    "你好。今天天气很好！我们走吧？" * 20,
    'He said "Stop!" Then he left... and never came back, or so they say; nobody knows — not even Mr. Jones. ' * 15,
    "antidisestablishmentarianism " * 40,
    "a" * 700,
    "Line one\nline two\n\n\nLine three: with, many, clauses, " * 10,
]


@pytest.mark.parametrize("text", CORPUS)
@pytest.mark.parametrize("max_chars", [1, 7, 40, 300])
def test_invariants(text: str, max_chars: int) -> None:
    pieces = split_sentences(text, max_chars=max_chars)
    assert all(len(p) <= max_chars for p in pieces)
    assert all(p == p.strip() and p for p in pieces)
    assert all(re.search(r"\w", p) for p in pieces)
    assert alnum("".join(pieces)) == alnum(text)


def test_random_texts_keep_invariants() -> None:
    # A seeded stand-in for a property test (hypothesis is not a dependency):
    # tricky fragments glued at random must never break the two guarantees.
    fragments = [*"ab .,!?;:\n\"')好。，—–-…3", "Dr.", "U.S.", " etc. ", "word"]
    rng = random.Random(1234)
    for _ in range(2000):
        text = "".join(rng.choice(fragments) for _ in range(rng.randint(0, 150)))
        max_chars = rng.randint(1, 50)
        pieces = split_sentences(text, max_chars=max_chars)
        assert all(0 < len(p) <= max_chars for p in pieces), (text, max_chars)
        assert alnum("".join(pieces)) == alnum(text), (text, max_chars)


if importlib.util.find_spec("hypothesis") is not None:
    from hypothesis import given
    from hypothesis import strategies as st

    @given(
        st.text(alphabet=st.sampled_from(list("ab .,!?;\n\"')好。，")), max_size=400),
        st.integers(min_value=1, max_value=60),
    )
    def test_property_pieces_fit_and_keep_words(text: str, max_chars: int) -> None:
        pieces = split_sentences(text, max_chars=max_chars)
        assert all(0 < len(p) <= max_chars for p in pieces)
        assert alnum("".join(pieces)) == alnum(text)
