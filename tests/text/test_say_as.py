"""say-as renderings: the words the model is given for numbers, dates, times and telephone
numbers, in English and Chinese (and numbers in the model's other languages)."""

from __future__ import annotations

import pytest

from server.text.say_as import render, zh_integer
from server.text.script import ScriptError


@pytest.mark.parametrize(
    ("kind", "text", "lang", "words"),
    [
        ("cardinal", "1,234", "en", "one thousand, two hundred and thirty-four"),
        ("cardinal", "-7", "en", "minus seven"),
        ("cardinal", "3.05", "en", "three point zero five"),
        ("ordinal", "21", "en", "twenty-first"),
        ("digits", "2048", "en", "two zero four eight"),
        ("characters", "AB1", "en", "A B one"),
        ("date", "3/5/2024", "en", "March fifth, twenty twenty-four"),
        ("date", "2024-12-25", "en", "December twenty-fifth, twenty twenty-four"),
        ("time", "2:30pm", "en", "two thirty P M"),
        ("time", "9:05", "en", "nine oh five"),
        ("time", "7:00", "en", "seven o'clock"),
        ("telephone", "+1 555-0123", "en", "plus one, five five five, zero one two three"),
        ("cardinal", "20305", "zh", "二万零三百零五"),
        ("cardinal", "-15", "zh", "负十五"),
        ("cardinal", "3.14", "zh", "三点一四"),
        ("ordinal", "3", "zh", "第三"),
        ("digits", "2048", "zh", "二零四八"),
        ("date", "2024-03-05", "zh", "二零二四年三月五日"),
        ("time", "14:05", "zh", "十四点零五分"),
        ("time", "8:30am", "zh", "上午八点三十分"),
        ("telephone", "138 1234 5678", "zh", "幺三八 幺二三四 五六七八"),
        ("cardinal", "42", "de", "zweiundvierzig"),
        ("ordinal", "2", "fr", "deuxième"),
    ],
)
def test_renderings(kind: str, text: str, lang: str, words: str) -> None:
    assert render(kind, text, lang) == words


def test_date_format_orders_the_fields() -> None:
    assert render("date", "5/3/2024", "en", "dmy") == "March fifth, twenty twenty-four"
    assert render("date", "12-25", "en", "md") == "December twenty-fifth"


@pytest.mark.parametrize(
    ("number", "words"),
    [(0, "零"), (10, "十"), (105, "一百零五"), (1005, "一千零五"), (10_010, "一万零一十"), (100_000_000, "一亿")],
)
def test_chinese_numerals(number: int, words: str) -> None:
    assert zh_integer(number) == words


@pytest.mark.parametrize(
    ("kind", "text", "lang"),
    [
        ("cardinal", "twelve", "en"),
        ("ordinal", "1.5", "en"),
        ("date", "2024-13-01", "zh"),
        ("date", "3/5", "en"),
        ("time", "25:00", "en"),
        ("telephone", "call me", "en"),
        ("date", "2024-01-01", "de"),  # no German date rendering: refused, not read wrongly
        ("currency", "5", "en"),
    ],
)
def test_what_is_not_its_kind_is_refused(kind: str, text: str, lang: str) -> None:
    with pytest.raises(ScriptError):
        render(kind, text, lang)
