"""A request's input read as a script (a 400 when it cannot be), its pronunciations applied,
and the script's layout: its spoken runs cut into segments, with the silence before each one and
after the last, grouped into parts that each run as one engine job (one voice, one language,
one speed, one gain).

Pauses are samples at the model's 24 kHz, inserted by the speech service between segments
as exact zeros, streamed in order like speech (synthesis.py); they are never time-stretched,
so a pause lasts what it says at any speed. A part's job draws segment i's seed as
seed + i over the whole request (its job's seed is the request's plus its first index), so
a segment sounds the same as when it is asked for alone with that seed.

What the client wrote and what is read can differ (a `sub` alias, a say-as rendering, a
pronunciation): each segment keeps the written text and the spans that were replaced, so
captions show the written words.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cached_property

from server.engine.jobs import SynthesisJob
from server.errors import invalid_request
from server.text import AUTO, UnsupportedLanguageError, detect_language, normalize_language
from server.text.pieces import split_pieces
from server.text.pronunciations import Lexicon
from server.text.reading import read_script
from server.text.script import Counts, Item, Pause, Script, ScriptError, Spoken, Voicing

_BLANK_RE = re.compile(r"\s")

# (spoken start, spoken end, written start, written end) of one replaced span of a segment.
Replaced = tuple[int, int, int, int]


@dataclass(frozen=True)
class LaidSegment:
    """One segment of a script: what is read, what was written, how, and after how much silence."""

    text: str
    written: str
    voicing: Voicing
    pause_before: int = 0
    marks: tuple[tuple[int, str], ...] = ()  # (offset in `text`, name)
    replaced: tuple[Replaced, ...] = ()


@dataclass(frozen=True)
class PlanPart:
    """Consecutive segments run as one engine job, with their own speed and gain."""

    job: SynthesisJob
    speed: float
    gain: float
    first: int  # the request-wide index of its first segment
    voice: str = ""  # its voice, as the output cache tells voices apart (speaker or saved voice)


@dataclass(frozen=True)
class Layout:
    """A script laid out: its segments in order and the silence after the last one."""

    segments: tuple[LaidSegment, ...]
    trailing_pause: int
    counts: Counts

    @cached_property
    def pauses(self) -> tuple[int, ...]:
        """Samples of silence before each segment, then after the last."""
        return (*(segment.pause_before for segment in self.segments), self.trailing_pause)

    def groups(self) -> Iterator[tuple[int, tuple[LaidSegment, ...]]]:
        """Runs of consecutive segments with one voicing (each becomes a job), with the index
        of the first."""
        start = 0
        for index in range(1, len(self.segments) + 1):
            if index == len(self.segments) or self.segments[index].voicing != self.segments[start].voicing:
                yield start, self.segments[start:index]
                start = index


def _position(text: str, visible: int) -> int:
    """The offset in `text` after `visible` characters that are not blanks."""
    if visible <= 0:
        return 0
    seen = 0
    for index, char in enumerate(text):
        if not char.isspace():
            seen += 1
            if seen == visible:
                return index + 1
    return len(text)


def _visible(text: str) -> int:
    return len(text) - len(_BLANK_RE.findall(text))


def _written_at(run: Spoken, offset: int, *, end: bool) -> int:
    """Where a spoken offset of a run falls in its written text (a replaced span maps whole)."""
    shift = 0
    for s0, s1, w0, w1 in run.replaced:
        if offset <= s0:
            break
        if offset < s1:
            return w1 if end else w0
        shift = w1 - s1
    return offset + shift


def _cut(run: Spoken, per_sentence: bool) -> list[LaidSegment]:
    """A run's segments, with each one's written text, marks and replaced spans. The splitter
    keeps every character but blanks, so a piece is found in the run by counting the others."""
    pieces = split_pieces(run.text, per_sentence=per_sentence or run.voicing.rate != 1.0)
    segments: list[LaidSegment] = []
    visible = 0
    for number, piece in enumerate(pieces):
        first, last = number == 0, number == len(pieces) - 1
        start = 0 if first else _position(run.text, visible)
        while start < len(run.text) and run.text[start].isspace():
            start += 1
        visible += _visible(piece)
        end = len(run.text) if last else _position(run.text, visible)
        marks = tuple(
            (_in_piece(piece, run.text, start, offset, opening=True), name)
            for offset, name in run.marks
            if (first or start <= offset) and (last or offset < end)
        )
        written: str = piece
        replaced: tuple[Replaced, ...] = ()
        if run.written is not None:
            w0, w1 = _written_at(run, start, end=False), _written_at(run, end, end=True)
            written = run.written[w0:w1].strip()
            replaced = tuple(
                (
                    _in_piece(piece, run.text, start, s0, opening=True),
                    _in_piece(piece, run.text, start, s1),
                    a - w0,
                    b - w0,
                )
                for s0, s1, a, b in run.replaced
                if start <= s0 and s1 <= end
            )
        segments.append(LaidSegment(piece, written, run.voicing, 0, marks, replaced))
    return segments


def _in_piece(piece: str, text: str, start: int, offset: int, *, opening: bool = False) -> int:
    """A run's offset as an offset in one of its pieces (whose blanks may differ); an
    `opening` offset (where a span starts) goes past the blanks before it."""
    position = min(_position(piece, _visible(text[start:offset])), len(piece))
    while opening and position < len(piece) and piece[position].isspace():
        position += 1
    return position


def lay_out(script: Script, *, per_sentence: bool) -> Layout:
    """The segments of a script, in order, with the silence before each."""
    segments: list[LaidSegment] = []
    pending = 0
    for item in script.items:
        if isinstance(item, Pause):
            pending += item.samples
            continue
        for number, segment in enumerate(_cut(item, per_sentence)):
            if number == 0 and pending:
                segment = LaidSegment(
                    segment.text, segment.written, segment.voicing, pending, segment.marks, segment.replaced
                )
                pending = 0
            segments.append(segment)
    return Layout(tuple(segments), pending, script.counts)


def resolve_language(requested: str | None, text: str) -> str:
    """The requested language, or one detected from the script when absent (`Auto` when the
    script does not tell, which lets the model decide)."""
    if requested is None or not requested.strip():
        return detect_language(text)
    try:
        return normalize_language(requested)
    except UnsupportedLanguageError as exc:
        raise invalid_request(str(exc), param="language", code="unsupported_language") from exc


def read_input(text: str, language: str | None = None) -> Script:
    """The script of a request's input (a 400 naming what is wrong when it cannot be read);
    `language` is the request's, as given."""
    requested = resolve_language(language, "") if language else None
    try:
        return read_script(text, None if requested == AUTO else requested)
    except ScriptError as exc:
        raise invalid_request(str(exc), param="input", code=exc.code) from exc


def pronounce(script: Script, lexicon: Lexicon, language: str | None) -> Script:
    """The script with its pronunciations read as their aliases, each run in its language
    (its own, else the request's `language`, else the one its script shows)."""
    if not lexicon:
        return script
    items: list[Item] = []
    hits = 0
    for item in script.items:
        if isinstance(item, Spoken):
            spoken_in = resolve_language(item.voicing.language or language, item.text)
            item, found = lexicon.apply(item, None if spoken_in == AUTO else spoken_in)
            hits += found
        items.append(item)
    if not hits:
        return script
    return replace(script, items=tuple(items), counts=replace(script.counts, pronunciation_hits=hits))
