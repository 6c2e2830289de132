import pytest

from server.text import (
    CJK_TOKENS_PER_CHAR,
    MAX_NEW_TOKENS,
    MIN_NEW_TOKENS,
    TOKENS_PER_WORD,
    estimate_tokens,
    is_mostly_cjk,
    max_new_tokens_for,
)

BIG_CAP = 100_000


def words(n: int) -> str:
    return " ".join(["word"] * n)


def test_rates_match_the_documented_choice() -> None:
    assert TOKENS_PER_WORD == 8
    assert CJK_TOKENS_PER_CHAR == 5
    assert (MIN_NEW_TOKENS, MAX_NEW_TOKENS) == (128, 2048)


def test_one_word_gets_the_floor() -> None:
    assert max_new_tokens_for("Hello", BIG_CAP) == 128


def test_empty_text_gets_the_floor() -> None:
    assert max_new_tokens_for("", BIG_CAP) == 128
    assert max_new_tokens_for("   \n", BIG_CAP) == 128


def test_hundred_words_is_eight_tokens_per_word() -> None:
    assert max_new_tokens_for(words(100), BIG_CAP) == 800


def test_thousand_words_hits_the_ceiling() -> None:
    assert max_new_tokens_for(words(1000), BIG_CAP) == 2048


def test_cap_wins_even_below_the_floor() -> None:
    assert max_new_tokens_for("Hello", 64) == 64
    assert max_new_tokens_for(words(100), 64) == 64


def test_cap_limits_the_middle_range() -> None:
    assert max_new_tokens_for(words(100), 500) == 500
    assert max_new_tokens_for(words(100), 801) == 800


def test_cap_must_be_positive() -> None:
    with pytest.raises(ValueError):
        max_new_tokens_for("Hello", 0)


def test_cjk_counts_per_character() -> None:
    text = "好" * 100
    assert is_mostly_cjk(text)
    assert max_new_tokens_for(text, BIG_CAP) == 100 * CJK_TOKENS_PER_CHAR
    # Counting the single space-free "word" would have given the floor.
    assert max_new_tokens_for(text, BIG_CAP) > 128


@pytest.mark.parametrize("text", ["こんにちは" * 20, "안녕하세요" * 20, "カタカナ" * 25])
def test_kana_and_hangul_count_per_character(text: str) -> None:
    assert max_new_tokens_for(text, BIG_CAP) == len(text) * CJK_TOKENS_PER_CHAR


def test_cjk_punctuation_is_not_spoken() -> None:
    assert estimate_tokens("你好。今天天气很好！") == 8 * CJK_TOKENS_PER_CHAR


def test_mixed_text_counts_latin_words_and_cjk_characters() -> None:
    # 4 Han characters + 1 Latin word.
    assert estimate_tokens("我用iPhone拍照") == 4 * 5 + 8


def test_no_jump_at_the_cjk_threshold() -> None:
    # Adding one CJK character adds one character's worth, whatever the mix.
    base = "one two three 你"
    assert estimate_tokens(base + "好") - estimate_tokens(base) == CJK_TOKENS_PER_CHAR


def test_numbers_count_per_digit() -> None:
    assert estimate_tokens("2024") == 4 * 8
    assert estimate_tokens("call 555-0199") == 8 + 7 * 8


def test_punctuation_only_tokens_are_free() -> None:
    assert estimate_tokens("wait — what ...") == 2 * 8


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", False),
        ("   ", False),
        ("Hello world", False),
        ("你好", True),
        ("こんにちは", True),
        ("안녕하세요", True),
        ("Привет", False),
        # 3 CJK of 10 non-space characters is exactly 30%: not more than 30%.
        ("abcdefg你好吗", False),
        ("abcdef你好吗", True),
        # Spaces do not count.
        ("a b c d e f g 你 好 吗 呢", True),
    ],
)
def test_is_mostly_cjk(text: str, expected: bool) -> None:
    assert is_mostly_cjk(text) is expected
