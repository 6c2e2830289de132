"""Pronunciations: written forms read as an alias (a spelling the model reads right), since
Qwen3-TTS takes no phonemes. A street, a brand, a character's name, said the same way for
ten hours.

Matching is one left-to-right pass over the text: at each place the longest entry that
matches wins, and what an alias puts in is never looked at again (an entry cannot rewrite
another's alias, nor itself). Text an SSML `sub` or `say-as` already replaced is left alone
too. An entry matches whole words unless it says otherwise (an entry in a script written
without spaces, Chinese or Japanese, matches anywhere), ignores case unless it says
otherwise, and applies to every language unless it names one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Final

from server.text._scripts import CJK_CLASS
from server.text.script import Spoken

MAX_ENTRIES: Final = 10_000
_CJK_RE: Final = re.compile(f"[{CJK_CLASS}]")
_WORD_RE: Final = re.compile(r"[^\W]+")


@dataclass(frozen=True)
class Pronunciation:
    """One entry: `text` as written is read as `alias`. `language` is a canonical name
    (English, Chinese, ...) or None for any."""

    text: str
    alias: str
    language: str | None = None
    case_sensitive: bool = False
    whole_word: bool = True


class _Index:
    """One language's entries, found by what they start with: a whole-word entry by its first
    word (looked up only where a word starts), any other by its first character. A lookup
    costs a dictionary access per place, whatever the number of entries (a regex alternation
    of them all tries each entry at each place: a second for 1,000 entries on a 4,000-character
    input)."""

    def __init__(self, entries: Sequence[Pronunciation]) -> None:
        self.by_word: dict[str, list[Pronunciation]] = {}
        self.by_char: dict[str, list[Pronunciation]] = {}
        # Longest first; among equals, the earlier entry (sorted is stable).
        for entry in sorted(entries, key=lambda e: -len(e.text)):
            first = _WORD_RE.match(entry.text)
            if _whole_word(entry) and first is not None:
                self.by_word.setdefault(first.group().lower(), []).append(entry)
            else:
                self.by_char.setdefault(entry.text[0].lower(), []).append(entry)

    def match(self, text: str, at: int, end: int) -> Pronunciation | None:
        """The longest entry that matches `text` at `at` (within `end`), if any."""
        candidates = self.by_char.get(text[at].lower(), [])
        if _is_word(text[at]) and (at == 0 or not _is_word(text[at - 1])):
            word = _WORD_RE.match(text, at, end)
            assert word is not None
            candidates = _longest_first(self.by_word.get(word.group().lower(), []), candidates)
        for entry in candidates:
            stop = at + len(entry.text)
            if stop > end:
                continue
            piece = text[at:stop]
            if piece != entry.text and (entry.case_sensitive or piece.lower() != entry.text.lower()):
                continue
            if _whole_word(entry) and (
                (at > 0 and _is_word(text[at - 1])) or (stop < len(text) and _is_word(text[stop]))
            ):
                continue
            return entry
        return None


def _longest_first(words: list[Pronunciation], chars: list[Pronunciation]) -> list[Pronunciation]:
    if not chars:
        return words
    if not words:
        return chars
    return sorted([*words, *chars], key=lambda e: -len(e.text))


class Lexicon:
    """Entries indexed per language; built once per set of entries, cheap to apply."""

    def __init__(self, entries: Iterable[Pronunciation]) -> None:
        # Earlier entries win over later ones of the same length (a request's over the file's).
        self.entries = tuple(entry for entry in entries if entry.text.strip())
        self._indices: dict[str | None, _Index | None] = {}

    def __bool__(self) -> bool:
        return bool(self.entries)

    def _index(self, language: str | None) -> _Index | None:
        if language not in self._indices:
            chosen = [e for e in self.entries if e.language is None or e.language == language]
            self._indices[language] = _Index(chosen) if chosen else None
        return self._indices[language]

    def apply(self, run: Spoken, language: str | None) -> tuple[Spoken, int]:
        """The run with every match read as its alias, and how many matched."""
        index = self._index(language)
        if index is None:
            return run, 0
        spoken: list[str] = []
        replaced: list[tuple[int, int, int, int]] = []
        moves: list[tuple[int, int]] = []  # (old end of a match, its change in length)
        cursor = 0  # in run.text
        shift = 0  # new offsets minus old ones, so far
        text = run.text
        for start, end in _free_spans(len(text), run.replaced):
            at = start
            while at < end:
                entry = index.match(text, at, end)
                if entry is None:
                    at += 1
                    continue
                stop = at + len(entry.text)
                spoken.append(text[cursor:at])
                spoken.append(entry.alias)
                w0, w1 = _written(run, at, stop)
                replaced.append((at + shift, at + shift + len(entry.alias), w0, w1))
                moves.append((stop, len(entry.alias) - (stop - at)))
                shift += moves[-1][1]
                cursor = at = stop
        if not moves:
            return run, 0
        spoken.append(run.text[cursor:])

        def moved(offset: int) -> int:
            return offset + sum(delta for end, delta in moves if end <= offset)

        marks = tuple((moved(offset), name) for offset, name in run.marks)
        kept = [(moved(a), moved(b), c, d) for a, b, c, d in run.replaced]
        merged = tuple(sorted(kept + replaced))
        return replace(run, text="".join(spoken), written=run.shown, marks=marks, replaced=merged), len(moves)


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


def _whole_word(entry: Pronunciation) -> bool:
    """Whether an entry matches whole words only (never in text written without spaces)."""
    return entry.whole_word and not _CJK_RE.search(entry.text)


def _free_spans(length: int, replaced: Sequence[tuple[int, int, int, int]]) -> list[tuple[int, int]]:
    """The parts of a run's text that no earlier replacement wrote."""
    spans, cursor = [], 0
    for start, end, _, _ in replaced:
        spans.append((cursor, start))
        cursor = end
    spans.append((cursor, length))
    return spans


def _written(run: Spoken, start: int, end: int) -> tuple[int, int]:
    """Where a span of a run's text (outside any replacement) lies in its written text."""
    shift = 0
    for _, s1, _, w1 in run.replaced:
        if s1 <= start:
            shift = w1 - s1
    return start + shift, end + shift
