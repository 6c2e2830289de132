"""Unicode script classification shared by the text helpers.

We only need to tell a handful of scripts apart (CJK, Cyrillic, Latin), so a
table of code-point ranges is enough; it avoids a dependency on a full
Unicode-script database such as the third-party ``regex`` module.
"""

from __future__ import annotations

import unicodedata
from typing import Final

# Ranges are inclusive (first, last) code points.
_HAN: Final = (
    (0x3005, 0x3005),  # 々 iteration mark: read as a repeated Han syllable
    (0x3007, 0x3007),  # 〇 ideographic zero
    (0x3400, 0x4DBF),  # CJK Unified Ideographs Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0x20000, 0x3134F),  # Extensions B..G and compatibility supplement
)
_KANA: Final = (
    (0x3041, 0x309F),  # Hiragana
    (0x30A0, 0x30FA),  # Katakana, minus U+30FB "・": Chinese also uses it
    (0x30FC, 0x30FF),  # ー and the remaining katakana marks
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0xFF66, 0xFF9F),  # Halfwidth katakana
)
_HANGUL: Final = (
    (0x1100, 0x11FF),  # Jamo
    (0x3130, 0x318F),  # Compatibility jamo
    (0xA960, 0xA97F),  # Jamo extended A
    (0xAC00, 0xD7AF),  # Syllables
    (0xD7B0, 0xD7FF),  # Jamo extended B
)
_CYRILLIC: Final = ((0x0400, 0x052F),)


def _in(ranges: tuple[tuple[int, int], ...], ch: str) -> bool:
    code = ord(ch)
    return any(first <= code <= last for first, last in ranges)


def is_han(ch: str) -> bool:
    return _in(_HAN, ch)


def is_kana(ch: str) -> bool:
    return _in(_KANA, ch)


def is_hangul(ch: str) -> bool:
    return _in(_HANGUL, ch)


def is_cyrillic(ch: str) -> bool:
    return _in(_CYRILLIC, ch)


def is_cjk(ch: str) -> bool:
    """True for Han, kana and Hangul: scripts written without word spaces
    where every character is roughly one spoken syllable (or mora)."""
    return is_han(ch) or is_kana(ch) or is_hangul(ch)


# A character class usable inside ``re`` patterns, kept in sync with is_cjk.
CJK_CLASS: Final = "".join(f"\\U{first:08x}-\\U{last:08x}" for first, last in (*_HAN, *_KANA, *_HANGUL))


# Scripts written together within one word: Japanese mixes Han and kana in a word.
_ONE_SCRIPT: Final = {"CJK": "HAN", "HIRAGANA": "HAN", "KATAKANA": "HAN", "KATAKANA-HIRAGANA": "HAN"}


def _script(ch: str) -> str | None:
    """The script of a letter, from its Unicode name (LATIN, CYRILLIC, ARABIC, HANGUL, ...;
    Han and kana as one); None for anything that is not a letter (digits, punctuation,
    marks), which belongs to the letters around it."""
    if not unicodedata.category(ch).startswith("L"):
        return None
    words = unicodedata.name(ch, "").split()
    if not words:
        return None
    first = words[1] if words[0] in ("HALFWIDTH", "FULLWIDTH") and len(words) > 1 else words[0]
    return _ONE_SCRIPT.get(first, first)


def separate_scripts(text: str) -> str:
    """`text` with a space wherever the script changes between two letters that nothing but
    punctuation or digits separate ("안녕하세요。Привет" -> "안녕하세요。 Привет"), so that a
    word splitter that cuts at spaces and drops punctuation (the forced aligner's) does not
    glue words of different scripts into one."""
    out: list[str] = []
    last: str | None = None
    for ch in text:
        if ch.isspace():
            last = None
        elif (script := _script(ch)) is not None:
            if last is not None and script != last:
                out.append(" ")
            last = script
        out.append(ch)
    return "".join(out)
