"""Pronunciations: matching (longest first, aliases never rewritten, case, whole words,
language), the file formats (JSON, YAML, W3C PLS) and the file read again when it changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from server.speech.pronunciation_file import PronunciationFileError, Pronunciations, read_pronunciations
from server.text.pronunciations import Lexicon, Pronunciation
from server.text.reading import read_script
from server.text.script import Spoken

P = Pronunciation


def read(text: str, entries: list[Pronunciation], language: str | None = None) -> tuple[str, int]:
    run, hits = Lexicon(entries).apply(Spoken(text), language)
    return run.text, hits


def test_longest_match_wins_and_aliases_are_never_rewritten() -> None:
    entries = [P("York", "Yoork"), P("New York", "Noo York"), P("Noo", "WRONG"), P("Yoork", "WRONG")]
    assert read("New York and York.", entries) == ("Noo York and Yoork.", 2)


def test_the_longest_wins_whether_it_matches_whole_words_or_anywhere() -> None:
    entries = [P("New York", "A"), P("new york city", "B", whole_word=False), P("York", "C"), P("York", "D")]
    assert read("New York City, York", entries) == ("B, C", 2)  # of two equal entries, the first


def test_case_and_whole_words() -> None:
    assert read("SQL, sql and Sql", [P("SQL", "sequel", case_sensitive=True)]) == ("sequel, sql and Sql", 1)
    assert read("cat category", [P("cat", "kat")]) == ("kat category", 1)
    assert read("cat category", [P("cat", "kat", whole_word=False)]) == ("kat kategory", 2)
    assert read("在上海市", [P("上海", "尚海")]) == ("在尚海市", 1)  # no spaces in Chinese: whole_word cannot apply


def test_an_entry_with_a_language_applies_to_that_language_only() -> None:
    entries = [P("Paris", "Pah-ree", language="French")]
    assert read("Paris", entries, "French") == ("Pah-ree", 1)
    assert read("Paris", entries, "English") == ("Paris", 0)


def test_written_text_spans_and_marks_follow_the_alias() -> None:
    script = read_script(
        '<speak>Dr. Nguyen at <say-as interpret-as="cardinal">12</say-as> <mark name="m"/>York.</speak>'
    )
    run = script.items[0]
    assert isinstance(run, Spoken)
    read_run, hits = Lexicon([P("Nguyen", "Win"), P("twelve", "WRONG"), P("York", "Yoork")]).apply(run, None)
    assert hits == 2  # "twelve" is say-as's rendering: never rewritten
    assert (read_run.text, read_run.written) == ("Dr. Win at twelve Yoork.", "Dr. Nguyen at 12 York.")
    assert read_run.replaced == ((4, 7, 4, 10), (11, 17, 14, 16), (18, 23, 17, 21))
    assert read_run.marks == ((18, "m"),)


PLS = """<?xml version="1.0" encoding="UTF-8"?>
<lexicon version="1.0" xmlns="http://www.w3.org/2005/01/pronunciation-lexicon" alphabet="ipa" xml:lang="en-US">
  <lexeme><grapheme>W3C</grapheme><grapheme>w3c</grapheme><alias>World Wide Web Consortium</alias></lexeme>
</lexicon>"""


def test_file_formats(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text('[{"text": "Nguyen", "alias": "Win", "language": "en"}]')
    (tmp_path / "p.yaml").write_text("pronunciations:\n  - {text: Nguyen, alias: Win, whole_word: false}\n")
    (tmp_path / "p.pls").write_text(PLS)
    assert read_pronunciations(tmp_path / "p.json") == [P("Nguyen", "Win", "English")]
    assert read_pronunciations(tmp_path / "p.yaml") == [P("Nguyen", "Win", whole_word=False)]
    assert read_pronunciations(tmp_path / "p.pls") == [
        P("W3C", "World Wide Web Consortium", "English"),
        P("w3c", "World Wide Web Consortium", "English"),
    ]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("bad.json", '[{"text": "a", "alias": "b", "phoneme": "x"}]'),
        ("bad.json", '[{"text": "a", "alias": "b", "language": "Klingon"}]'),
        ("bad.pls", PLS.replace("<alias>World Wide Web Consortium</alias>", "<phoneme>x</phoneme>")),
        ("bad.pls", '<!DOCTYPE l [<!ENTITY a "b">]><lexicon/>'),
        ("bad.txt", "Nguyen=Win"),
    ],
)
def test_a_bad_file_is_refused(tmp_path: Path, name: str, content: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(PronunciationFileError):
        Pronunciations(tmp_path / name)


def test_the_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('[{"text": "Nguyen", "alias": "Win"}]')
    book = Pronunciations(path)
    assert book.lexicon().entries == (P("Nguyen", "Win"),)
    path.write_text('[{"text": "Nguyen", "alias": "Nwen"}]')
    os.utime(path, ns=(1, 10**18))  # a distinct modification time, whatever the clock's resolution
    assert book.lexicon().entries == (P("Nguyen", "Nwen"),)
    path.write_text("[{")  # an edit in progress: the entries before stay
    os.utime(path, ns=(1, 2 * 10**18))
    assert book.lexicon().entries == (P("Nguyen", "Nwen"),)
    assert book.lexicon([P("Nguyen", "Mine")]).entries == (P("Nguyen", "Mine"), P("Nguyen", "Nwen"))
