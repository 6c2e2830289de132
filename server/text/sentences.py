"""Sentence splitting for sentence-by-sentence streaming synthesis.

Synthesizing one sentence at a time lets the first audio leave long before
the whole text is done, and bounds the work per generation. Splitting too
eagerly (after "Dr." or inside "3.14") makes the voice pause mid-sentence,
so boundaries are only taken where a reader would take a breath.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from server.text._scripts import CJK_CLASS

MAX_SENTENCE_CHARS: Final = 300

# Terminal punctuation: ASCII/Unicode runs ("?!", "...", "…") or CJK
# full stops, which are followed directly by the next sentence with no space.
_TERMINAL: Final = r".!?…‼⁇⁈⁉。！？｡"
_CJK_TERMINAL: Final = frozenset("。！？｡")
# Closing quotes and brackets that belong to the sentence they close.
_CLOSERS: Final = "\"'”’»›)]}）】」』》〉〕〗〙〛"
# Skipped when looking at how the next sentence starts.
_OPENERS: Final = "\"'“‘«‹([{（【「『《〈〔¿¡"

_END_RE: Final = re.compile(f"[{re.escape(_TERMINAL)}]+[{re.escape(_CLOSERS)}]*")

# Abbreviations that are (practically) never the end of a sentence:
# titles before a name, and Latin connectives inside a sentence. "etc.",
# "Inc." or "a.m." often do end one, so they are left to the general rule
# (no boundary when the next word is lower-case). When unsure we keep text
# together: a missed boundary only makes one chunk longer, while a false one
# puts an audible pause after "Dr.".
_NEVER_FINAL: Final = (
    frozenset({"mr", "mrs", "ms", "mx", "dr", "prof", "st", "rev", "fr", "hon"})
    | frozenset({"gen", "col", "capt", "lt", "sgt", "gov", "sen", "rep", "pres"})
    | frozenset({"vs", "v", "e.g", "i.e", "cf", "approx", "ca", "viz"})
)
# Abbreviations that precede a number ("No. 5", "Fig. 3", "pp. 10-12"); they
# are only kept together with what follows when a digit follows.
_BEFORE_NUMBER: Final = frozenset({"no", "nos", "nr", "fig", "figs", "vol", "vols", "p", "pp", "ch", "sec", "eq"})
# Upper-case dotted initialisms ("U.S", "U.K", "U.S.A" before their final
# dot) are mostly followed by a proper noun ("the U.S. Senate").
_INITIALISM_RE: Final = re.compile(r"(?:[A-Z]\.)+[A-Z]")
_CJK_RE: Final = re.compile(f"[{CJK_CLASS}]")

# Where an over-long sentence may be broken, in order of preference.
# Clause punctuation: ASCII needs a following space (so "1,000" and "3:45"
# stay whole); an en dash or hyphen only counts when spaced (so "1990–2000"
# and "well-known" stay whole); em dashes and CJK commas need no space.
_CLAUSE_END_RE: Final = re.compile(r"[,;:](?=\s)|—|[，、；：]|\s[–-](?=\s)")
# Units for breaking a clause: a CJK character (any character boundary is a
# valid break in CJK text) or a whitespace-delimited word, each with its
# leading space so that joining units restores the text.
_WORD_RE: Final = re.compile(f"\\s*(?:[{CJK_CLASS}]|[^\\s{CJK_CLASS}]+)")


def split_sentences(text: str, max_chars: int = MAX_SENTENCE_CHARS) -> list[str]:
    """Split ``text`` into trimmed sentences of at most ``max_chars``.

    Blank lines and line breaks separate sentences, except a line starting
    with a lower-case letter, which continues a hard-wrapped sentence. Runs of
    whitespace are collapsed to one space. Pieces without any letter or digit
    are dropped. A sentence longer than ``max_chars`` is broken at clause
    punctuation, then between words; only a single word longer than
    ``max_chars`` is cut mid-word.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be positive, got {max_chars}")
    pieces: list[str] = []
    for block in _blocks(text):
        for sentence in _sentences(block):
            if len(sentence) > max_chars:
                pieces.extend(_split_long(sentence, max_chars))
            else:
                pieces.append(sentence)
    return [p for p in pieces if any(ch.isalnum() for ch in p)]


def _blocks(text: str) -> list[str]:
    """Lines, with hard-wrapped continuation lines joined back, whitespace
    collapsed. A line break is a boundary because text laid out in lines
    (titles, lists, verses) rarely punctuates its line ends."""
    blocks: list[str] = []
    joinable = False  # a blank line forbids joining to the previous block
    for line in text.splitlines():
        line = " ".join(line.split())
        if not line:
            joinable = False
            continue
        if joinable and line[0].islower():
            blocks[-1] += " " + line
        else:
            blocks.append(line)
        joinable = True
    return blocks


def _sentences(block: str) -> list[str]:
    sentences: list[str] = []
    start = 0
    for match in _END_RE.finditer(block):
        if _is_boundary(block, match):
            sentences.append(block[start : match.end()].strip())
            start = match.end()
    sentences.append(block[start:].strip())
    return [s for s in sentences if s]


def _is_boundary(block: str, match: re.Match[str]) -> bool:
    end = match.end()
    punct = match.group()
    if any(ch in _CJK_TERMINAL for ch in punct):
        return True
    if end == len(block):
        return True
    following = block[end]
    if not following.isspace():
        # "3.14", "U.S.A", "e.g.," and URLs; CJK text needs no space.
        return bool(_CJK_RE.match(following))
    nxt = block[end:].lstrip().lstrip(_OPENERS)
    if nxt[:1].islower():
        # "approx. five", "the U.S.A. flag", "Wait... what?": a sentence does
        # not start in lower case, so this is an abbreviation or a pause.
        return False
    if punct != ".":
        return True
    word = block[: match.start()].rsplit(" ", 1)[-1].lstrip(_OPENERS)
    if _INITIALISM_RE.fullmatch(word):
        return False
    lower = word.lower()
    if lower in _NEVER_FINAL:
        return False
    if lower in _BEFORE_NUMBER and nxt[:1].isdigit():
        return False
    # An initial as in "J. R. R. Tolkien". "I" is excluded: "So do I." ends
    # sentences far more often than a name has the initial I.
    return not (len(word) == 1 and word.isupper() and word != "I")


def _split_long(sentence: str, max_chars: int) -> list[str]:
    def by_words(clause: str) -> list[str]:
        return _pack(_WORD_RE.findall(clause), max_chars, lambda w: _hard_split(w, max_chars))

    return _pack(_clauses(sentence), max_chars, by_words)


def _clauses(sentence: str) -> list[str]:
    """Cut after each clause mark; the pieces concatenate to ``sentence``."""
    cuts = [m.end() for m in _CLAUSE_END_RE.finditer(sentence)]
    bounds = zip([0, *cuts], [*cuts, len(sentence)], strict=True)
    return [sentence[a:b] for a, b in bounds if b > a]


def _pack(units: list[str], max_chars: int, split_unit: Callable[[str], list[str]]) -> list[str]:
    """Greedily join consecutive ``units`` into pieces of at most
    ``max_chars``; a unit that is too long alone goes to ``split_unit``."""
    pieces: list[str] = []
    current = ""
    for unit in units:
        if len((current + unit).strip()) <= max_chars:
            current += unit
            continue
        if current.strip():
            pieces.append(current.strip())
        current = unit
        if len(unit.strip()) > max_chars:
            # Keep the tail of the split unit open so the next units can
            # fill it up instead of leaving a short fragment.
            *done, current = split_unit(unit)
            pieces.extend(done)
    if current.strip():
        pieces.append(current.strip())
    return pieces


def _hard_split(word: str, max_chars: int) -> list[str]:
    word = word.strip()
    return [word[i : i + max_chars] for i in range(0, len(word), max_chars)]
