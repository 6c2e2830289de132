"""Pieces: the units of text generated in one go.

With the frame loop, audio streams within a generation, so splitting no longer buys latency.
What it still buys: a bound on each generation (its key/value memory, and what a runaway
that never says end-of-speech can cost) and room for the model to phrase several sentences
together. A piece is therefore whole sentences, joined up to `PIECE_MAX_CHARS`: about five
typical sentences, 25-30 s of speech, a few hundred prompt and frame positions, which keeps
prosody across sentence boundaries inside a piece and keeps every piece well inside the
talker's memory budget. A sentence longer than that was already cut by the splitter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from server.text.sentences import split_sentences

PIECE_MAX_CHARS: Final = 400

# Sentences ending in these run on without a space in the source text (CJK full stops).
_NO_SPACE_AFTER: Final = frozenset("。！？｡")


def join_sentences(sentences: Sequence[str], max_chars: int = PIECE_MAX_CHARS) -> list[str]:
    """Consecutive sentences joined into pieces of at most `max_chars` (a longer sentence is a
    piece of its own), in order, none empty."""
    pieces: list[str] = []
    current = ""
    for sentence in sentences:
        if not current:
            current = sentence
            continue
        glue = "" if current[-1] in _NO_SPACE_AFTER else " "
        if len(current) + len(glue) + len(sentence) > max_chars:
            pieces.append(current)
            current = sentence
        else:
            current = current + glue + sentence
    if current:
        pieces.append(current)
    return pieces


def split_pieces(text: str, *, per_sentence: bool = False) -> tuple[str, ...]:
    """The pieces of `text` (one per sentence when `per_sentence`); text with no sentence in it
    is one piece."""
    sentences = split_sentences(text)
    if not sentences:
        return (text.strip(),)
    return tuple(sentences if per_sentence else join_sentences(sentences))
