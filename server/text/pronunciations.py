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


@dataclass(frozen=True)
class Pronunciation:
    """One entry: `text` as written is read as `alias`. `language` is a canonical name
    (English, Chinese, ...) or None for any."""

    text: str
    alias: str
    language: str | None = None
    case_sensitive: bool = False
    whole_word: bool = True


class Lexicon:
    """Entries compiled into one pattern per language; cheap to apply, built once per set."""

    def __init__(self, entries: Iterable[Pronunciation]) -> None:
        # Earlier entries win over later ones of the same length (a request's over the file's).
        self.entries = tuple(entry for entry in entries if entry.text.strip())
        self._patterns: dict[str | None, tuple[re.Pattern[str], tuple[Pronunciation, ...]] | None] = {}

    def __bool__(self) -> bool:
        return bool(self.entries)

    def _pattern(self, language: str | None) -> tuple[re.Pattern[str], tuple[Pronunciation, ...]] | None:
        if language not in self._patterns:
            chosen = [e for e in self.entries if e.language is None or e.language == language]
            # Longest first: the regex takes the first alternative that matches at a place.
            chosen.sort(key=lambda entry: -len(entry.text))
            self._patterns[language] = (
                (re.compile("|".join(f"({_alternative(entry)})" for entry in chosen)), tuple(chosen))
                if chosen
                else None
            )
        return self._patterns[language]

    def apply(self, run: Spoken, language: str | None) -> tuple[Spoken, int]:
        """The run with every match read as its alias, and how many matched."""
        compiled = self._pattern(language)
        if compiled is None:
            return run, 0
        pattern, chosen = compiled
        spoken: list[str] = []
        replaced: list[tuple[int, int, int, int]] = []
        moves: list[tuple[int, int]] = []  # (old end of a match, its change in length)
        cursor = 0  # in run.text
        shift = 0  # new offsets minus old ones, so far
        for start, end in _free_spans(len(run.text), run.replaced):
            for match in pattern.finditer(run.text, start, end):
                entry = chosen[(match.lastindex or 1) - 1]
                spoken.append(run.text[cursor : match.start()])
                spoken.append(entry.alias)
                new_start = match.start() + shift
                w0, w1 = _written(run, match.start(), match.end())
                replaced.append((new_start, new_start + len(entry.alias), w0, w1))
                moves.append((match.end(), len(entry.alias) - (match.end() - match.start())))
                shift += moves[-1][1]
                cursor = match.end()
        if not moves:
            return run, 0
        spoken.append(run.text[cursor:])

        def moved(offset: int) -> int:
            return offset + sum(delta for end, delta in moves if end <= offset)

        marks = tuple((moved(offset), name) for offset, name in run.marks)
        kept = [(moved(a), moved(b), c, d) for a, b, c, d in run.replaced]
        merged = tuple(sorted(kept + replaced))
        return replace(run, text="".join(spoken), written=run.shown, marks=marks, replaced=merged), len(moves)


def _alternative(entry: Pronunciation) -> str:
    body = re.escape(entry.text)
    if not entry.case_sensitive:
        body = f"(?i:{body})"
    if entry.whole_word and not _CJK_RE.search(entry.text):
        body = rf"(?<!\w){body}(?!\w)"
    return body


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
