"""Language names accepted by Qwen3-TTS, and cheap script-based detection."""

from __future__ import annotations

import re
from typing import Final

from server.text._scripts import is_cjk, is_cyrillic, is_han, is_hangul, is_kana
from server.text.quoting import user_string

AUTO: Final = "Auto"

# The ten languages the model has language ids for. The model compares names
# case-insensitively; we hand it these canonical spellings.
SUPPORTED_LANGUAGES: Final[tuple[str, ...]] = (
    "Chinese",
    "English",
    "Japanese",
    "Korean",
    "German",
    "French",
    "Russian",
    "Portuguese",
    "Spanish",
    "Italian",
)

# Every value normalize_language may return.
ACCEPTED_LANGUAGES: Final[tuple[str, ...]] = (AUTO, *SUPPORTED_LANGUAGES)

# Lower-case aliases: ISO 639-1, ISO 639-2/B and /T codes, and endonyms, so
# clients can pass what their own locale APIs produce.
_ALIASES: Final[dict[str, str]] = {
    **{name.lower(): name for name in ACCEPTED_LANGUAGES},
    **dict.fromkeys(
        ("zh", "zho", "chi", "cmn", "mandarin", "中文", "汉语", "漢語", "普通话"),
        "Chinese",
    ),
    **dict.fromkeys(("en", "eng"), "English"),
    **dict.fromkeys(("ja", "jpn", "日本語"), "Japanese"),
    **dict.fromkeys(("ko", "kor", "한국어"), "Korean"),
    **dict.fromkeys(("de", "deu", "ger", "deutsch"), "German"),
    **dict.fromkeys(("fr", "fra", "fre", "français", "francais"), "French"),
    **dict.fromkeys(("ru", "rus", "русский"), "Russian"),
    **dict.fromkeys(("pt", "por", "português", "portugues"), "Portuguese"),
    **dict.fromkeys(("es", "spa", "español", "espanol"), "Spanish"),
    **dict.fromkeys(("it", "ita", "italiano"), "Italian"),
}

# BCP 47 / POSIX locale separators: "en-US", "zh_CN", "pt-BR", "zh-Hans-CN".
_LOCALE_RE: Final = re.compile(r"([a-z]{2,3})(?:[-_][a-z0-9]{1,8})+")


class UnsupportedLanguageError(ValueError):
    """Raised for a language the model cannot speak."""

    def __init__(self, value: str) -> None:
        self.value = value
        super().__init__(f"Unsupported language {user_string(value)}. Supported: {', '.join(ACCEPTED_LANGUAGES)}")


def normalize_language(value: str | None) -> str:
    """Map a user-supplied language to its canonical name.

    None, "" and "auto" (any case) give "Auto". A region or script subtag is
    ignored ("zh-TW" and "zh-Hans" are Chinese: the model has a single
    Chinese voice model, and traditional characters read the same).
    """
    if value is None:
        return AUTO
    key = value.strip().casefold()
    if not key:
        return AUTO
    if key in _ALIASES:
        return _ALIASES[key]
    locale = _LOCALE_RE.fullmatch(key)
    if locale and locale.group(1) in _ALIASES:
        return _ALIASES[locale.group(1)]
    raise UnsupportedLanguageError(value)


# Share of letters that must be CJK for the text to be read as CJK. Latin
# words are counted per letter while CJK is one character per syllable, so a
# Chinese sentence naming an "iPhone" already has many Latin letters; 30%
# matches server.text.budget's "mostly CJK" rule.
_CJK_SHARE: Final = 0.3
# Kana share (of Han + kana) from which Han text is Japanese. Japanese prose
# is typically 30-60% kana; a small floor tolerates a stray "の" in Chinese.
_KANA_SHARE: Final = 0.05


def detect_language(text: str) -> str:
    """Guess the language from the writing system, or return "Auto".

    Only scripts that identify one supported language are used: Hangul is
    Korean, kana is Japanese, Han without kana is Chinese, Cyrillic is
    Russian. Latin script gives "Auto": telling English from German, French,
    Spanish, Portuguese or Italian reliably needs a statistical language
    identifier (a library and a model), which this cheap check avoids; the
    TTS model's own "Auto" mode handles it. Mixed or other scripts are "Auto"
    too.
    """
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return AUTO
    hangul = sum(1 for ch in letters if is_hangul(ch))
    kana = sum(1 for ch in letters if is_kana(ch))
    han = sum(1 for ch in letters if is_han(ch))
    cjk = sum(1 for ch in letters if is_cjk(ch))
    if cjk / len(letters) > _CJK_SHARE:
        if hangul > han + kana:
            return "Korean"
        if kana and kana / (han + kana) >= _KANA_SHARE:
            return "Japanese"
        if han > hangul:
            return "Chinese"
        return AUTO
    cyrillic = sum(1 for ch in letters if is_cyrillic(ch))
    if cyrillic / len(letters) > 0.5:
        return "Russian"
    return AUTO
