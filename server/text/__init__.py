"""Text preparation for synthesis: language names, sentence splitting and
token budgets. Pure Python, so it can be used and tested without torch."""

from server.text._scripts import separate_scripts
from server.text.budget import (
    CJK_TOKENS_PER_CHAR,
    MAX_NEW_TOKENS,
    MIN_NEW_TOKENS,
    TOKENS_PER_WORD,
    estimate_tokens,
    is_mostly_cjk,
    max_new_tokens_for,
)
from server.text.language import (
    ACCEPTED_LANGUAGES,
    AUTO,
    SUPPORTED_LANGUAGES,
    UnsupportedLanguageError,
    detect_language,
    normalize_language,
)
from server.text.sentences import MAX_SENTENCE_CHARS, split_sentences

__all__ = [
    "ACCEPTED_LANGUAGES",
    "AUTO",
    "CJK_TOKENS_PER_CHAR",
    "MAX_NEW_TOKENS",
    "MAX_SENTENCE_CHARS",
    "MIN_NEW_TOKENS",
    "SUPPORTED_LANGUAGES",
    "TOKENS_PER_WORD",
    "UnsupportedLanguageError",
    "detect_language",
    "estimate_tokens",
    "is_mostly_cjk",
    "max_new_tokens_for",
    "normalize_language",
    "separate_scripts",
    "split_sentences",
]
