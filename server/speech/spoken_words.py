"""From the words that were read back to the words that were written.

The aligner times the text the model read. Where a script replaced a span (an SSML `sub`
alias, a say-as rendering, a pronunciation's alias), the words read inside it stand for the
written span: they become one word, the span as written, from the first one's start to the
last one's end. An SSML mark is timed at the start of the first word at or after it (the
segment's end when none follows).
"""

from __future__ import annotations

from collections.abc import Sequence

# (word, start, end): a timed unit, in seconds from the start of the stream.
Timed = tuple[str, float, float]


def find_positions(text: str, units: Sequence[str]) -> list[int] | None:
    """Where each unit starts in `text`, in order, each a subsequence of the text from there
    (the aligner's processor only drops characters and splits); None when one is not found."""
    positions: list[int] = []
    cursor = 0
    for unit in units:
        if not unit:
            return None
        first = text.find(unit[0], cursor)
        if first < 0:
            return None
        matched, index = 0, first
        while matched < len(unit) and index < len(text):
            if text[index] == unit[matched]:
                matched += 1
            index += 1
        if matched < len(unit):
            return None
        positions.append(first)
        cursor = index
    return positions


def written_units(
    spoken: str, written: str, replaced: Sequence[tuple[int, int, int, int]], words: Sequence[Timed]
) -> list[Timed]:
    """The timed words of `spoken` as words of `written`: those inside a replaced span merge
    into the span as written; the others are kept as they are."""
    if not replaced:
        return list(words)
    positions = find_positions(spoken, [word for word, _, _ in words])
    if positions is None:
        return list(words)
    out: list[Timed] = []
    open_span: tuple[int, int, int, int] | None = None
    for (word, start, end), position in zip(words, positions, strict=True):
        span = next((r for r in replaced if r[0] <= position < r[1]), None)
        if span is None:
            out.append((word, start, end))
            open_span = None
        elif span == open_span:
            out[-1] = (out[-1][0], out[-1][1], end)
        else:
            out.append((written[span[2] : span[3]].strip() or word, start, end))
            open_span = span
    return out


def mark_times(
    spoken: str, marks: Sequence[tuple[int, str]], words: Sequence[Timed], end: float
) -> list[tuple[str, float]]:
    """Each mark's time: the start of the first word at or after its offset in `spoken`."""
    if not marks:
        return []
    positions = find_positions(spoken, [word for word, _, _ in words]) or []
    timed: list[tuple[str, float]] = []
    for offset, name in marks:
        after = [words[i][1] for i, position in enumerate(positions) if position >= offset]
        timed.append((name, after[0] if after else end))
    return timed
