"""Adaptive ``max_new_tokens`` for the Qwen3-TTS codec.

The talker emits one codec frame per token at 12.5 frames per second, so the
token budget is really a cap on audio duration. It exists to stop a
generation that fails to emit EOS from babbling for the model's whole context;
a well-behaved generation stops on its own well before the budget. The budget
is therefore deliberately generous (about 1.6x a normal speaking rate):
cutting real speech short is worse than letting a rare runaway run a little
longer.
"""

from __future__ import annotations

import re
from typing import Final

from server.text._scripts import CJK_CLASS, is_cjk

FRAMES_PER_SECOND: Final = 12.5

# English is spoken at ~150 words/min = 2.5 words/s = 5 frames per word;
# 8 tokens per word leaves ~1.6x headroom for slow voices and pauses.
TOKENS_PER_WORD: Final = 8

# Mandarin is read at ~3.5-4.5 syllables/s and every Han character is one
# syllable: 12.5 / 4 ~= 3.1 frames per character, and the same ~1.6x headroom
# gives 5. Kana (one mora each) and Hangul are spoken faster per character, so
# the single rate is generous for Japanese and Korean, which is the safe side.
CJK_TOKENS_PER_CHAR: Final = 5

# Short texts still need room for the model's leading/trailing silence.
MIN_NEW_TOKENS: Final = 128
# 2048 frames ~= 164 s of audio: longer inputs are meant to be split into
# sentences (see server.text.sentences) rather than synthesized in one go.
MAX_NEW_TOKENS: Final = 2048

# Share of non-space characters above which a text counts as "mostly CJK".
CJK_SHARE_THRESHOLD: Final = 0.3

# One CJK character, or one run of other non-space characters (a "word").
_UNIT_RE: Final = re.compile(f"[{CJK_CLASS}]|[^\\s{CJK_CLASS}]+")


def is_mostly_cjk(text: str) -> bool:
    """True when more than 30% of the non-space characters are Han, kana or
    Hangul. Punctuation counts in the denominator, so a CJK text full of
    Latin-script brand names or numbers may fall below the threshold."""
    chars = [ch for ch in text if not ch.isspace()]
    if not chars:
        return False
    cjk = sum(1 for ch in chars if is_cjk(ch))
    return cjk / len(chars) > CJK_SHARE_THRESHOLD


def _word_weight(word: str) -> int:
    """How many spoken words a whitespace-free non-CJK token stands for.

    Numbers are read out much longer than they are written ("2024" is
    "twenty twenty-four", "555-0199" is seven digits), so each digit counts as
    a word. Punctuation-only tokens ("—", "...") are not spoken at all.
    """
    digits = sum(1 for ch in word if ch.isdigit())
    if digits:
        return digits
    return 1 if any(ch.isalnum() for ch in word) else 0


def estimate_tokens(text: str) -> int:
    """Unclamped token estimate: 8 per word, 5 per CJK character.

    CJK characters are always counted per character and other runs per word,
    even in mixed text. That is exactly "per character when mostly CJK,
    per word otherwise" for pure texts, but without a jump at the 30%
    threshold, where one extra CJK character would otherwise flip the whole
    text from per-word to per-character counting.
    """
    total = 0
    for unit in _UNIT_RE.findall(text):
        if len(unit) == 1 and is_cjk(unit):
            total += CJK_TOKENS_PER_CHAR
        else:
            total += TOKENS_PER_WORD * _word_weight(unit)
    return total


def max_new_tokens_for(text: str, cap: int) -> int:
    """Token budget for synthesizing ``text``: the estimate clamped to
    [128, 2048], then to ``cap`` (the server's configured limit), which wins
    even when it is below 128."""
    if cap < 1:
        raise ValueError(f"cap must be a positive number of tokens, got {cap}")
    budget = min(max(estimate_tokens(text), MIN_NEW_TOKENS), MAX_NEW_TOKENS)
    return min(budget, cap)
