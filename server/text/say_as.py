"""SSML `say-as`: numbers, dates, times and telephone numbers written out as the words the
model reads. Qwen3-TTS reads digits as it pleases (and differently per language), so the
server decides: English through num2words (a maintained library, its output the ordinary
spelling), Chinese by the rules below (written here: they are short, and num2words' Chinese
is incomplete). num2words also covers the cardinal and ordinal forms of the model's other
languages; a date, time or telephone number in those is refused rather than read wrongly.
"""

from __future__ import annotations

import re
from typing import Final

from num2words import num2words

from server.text.script import ScriptError

KINDS: Final = ("characters", "spell-out", "cardinal", "number", "ordinal", "digits", "date", "time", "telephone")

# num2words' codes for the model's languages besides English and Chinese.
_NUM2WORDS_LANG: Final = {
    "de": "de",
    "fr": "fr",
    "ru": "ru",
    "pt": "pt",
    "es": "es",
    "it": "it",
    "ja": "ja",
    "ko": "ko",
}

_EN_DIGITS: Final = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_ZH_DIGITS: Final = "零一二三四五六七八九"
_EN_MONTHS: Final = (
    *("January", "February", "March", "April", "May", "June"),
    *("July", "August", "September", "October", "November", "December"),
)


def render(kind: str, text: str, lang: str, date_format: str | None = None) -> str:
    """`text` as words in `lang` (a two-letter code: en, zh, ...); ScriptError when it is not
    the kind it claims to be, or the language has no rendering of that kind."""
    value = text.strip()
    if kind in ("characters", "spell-out"):
        return _characters(value, lang)
    if kind == "digits":
        return _digits(value, lang)
    if kind in ("cardinal", "number", "ordinal"):
        return _number(value, lang, ordinal=kind == "ordinal")
    if lang not in ("en", "zh"):
        raise ScriptError(f"say-as {kind} is rendered for English and Chinese only", "unsupported_ssml")
    if kind == "date":
        return _date(value, lang, date_format or _default_date_format(value, lang))
    if kind == "time":
        return _time(value, lang)
    if kind == "telephone":
        return _telephone(value, lang)
    raise ScriptError(
        f"say-as interpret-as={kind!r} is not supported: use one of {', '.join(KINDS)}", "unsupported_ssml"
    )


def _digit_word(digit: str, lang: str, phone: bool = False) -> str:
    if lang == "zh":
        return "幺" if phone and digit == "1" else _ZH_DIGITS[int(digit)]
    return _EN_DIGITS[int(digit)]


def _characters(value: str, lang: str) -> str:
    chars = [ch for ch in value if not ch.isspace()]
    if lang == "zh":
        return "".join(_digit_word(ch, lang) if ch.isascii() and ch.isdigit() else ch for ch in chars)
    return " ".join(_digit_word(ch, lang) if ch.isascii() and ch.isdigit() else ch.upper() for ch in chars)


def _digits(value: str, lang: str) -> str:
    digits = re.sub(r"[\s,._-]", "", value)
    if not digits.isascii() or not digits.isdigit():
        raise ScriptError(f"say-as digits wants digits; got {value!r}", "invalid_ssml")
    return ("" if lang == "zh" else " ").join(_digit_word(d, lang) for d in digits)


_NUMBER_RE: Final = re.compile(r"^([+-]?)(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?$")


def _number(value: str, lang: str, *, ordinal: bool) -> str:
    match = _NUMBER_RE.match(value.replace(" ", ""))
    if match is None or (ordinal and (match.group(1) or match.group(3))):
        want = "a whole number" if ordinal else "a number"
        raise ScriptError(f"say-as {'ordinal' if ordinal else 'cardinal'} wants {want}; got {value!r}", "invalid_ssml")
    sign, whole, fraction = match.group(1), int(match.group(2).replace(",", "")), match.group(3)
    if lang == "zh":
        words = zh_integer(whole)
        if fraction:
            words += "点" + "".join(_ZH_DIGITS[int(d)] for d in fraction)
        return ("第" + words) if ordinal else ("负" if sign == "-" else "") + words
    code = "en" if lang == "en" else _NUM2WORDS_LANG.get(lang)
    if code is None:
        raise ScriptError(f"say-as numbers are not rendered for language {lang!r}", "unsupported_ssml")
    if ordinal:
        return str(num2words(whole, lang=code, to="ordinal"))
    number = float(f"{whole}.{fraction}") if fraction else whole
    words = str(num2words(number, lang=code))
    if fraction and code == "en":  # num2words rounds a float's digits; read them as written
        words = str(num2words(whole, lang=code)) + " point " + " ".join(_EN_DIGITS[int(d)] for d in fraction)
    return ("minus " if code == "en" else "-") + words if sign == "-" else words


_ZH_UNITS: Final = ("", "十", "百", "千")
_ZH_GROUPS: Final = ("", "万", "亿", "万亿")


def zh_integer(number: int) -> str:
    """A whole number in Chinese numerals: 10 十, 105 一百零五, 20300 二万零三百."""
    if number == 0:
        return "零"
    if number >= 10**16:
        return "".join(_ZH_DIGITS[int(d)] for d in str(number))
    groups: list[int] = []
    while number:
        number, group = divmod(number, 10_000)
        groups.append(group)
    out = ""
    zero_pending = False
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            zero_pending = bool(out)
            continue
        if out and (zero_pending or group < 1000):
            out += "零"
        out += _zh_group(group) + _ZH_GROUPS[index]
        zero_pending = False
    if out.startswith("一十"):  # 十五, not 一十五
        out = out[1:]
    return out


def _zh_group(group: int) -> str:
    """1 to 9999 in Chinese numerals, zeros inside read once (1005 一千零五)."""
    out = ""
    zero = False
    for position in range(3, -1, -1):
        digit = group // 10**position % 10
        if digit == 0:
            zero = bool(out)
            continue
        if zero:
            out += "零"
            zero = False
        out += _ZH_DIGITS[digit] + _ZH_UNITS[position]
    return out


def _default_date_format(value: str, lang: str) -> str:
    """Without `format`: year first when the date opens with a four-digit year (ISO 8601),
    else the language's custom (month first in English)."""
    if re.match(r"\d{4}\D", value) or lang == "zh":
        return "ymd"
    return "mdy"


def _date(value: str, lang: str, fmt: str) -> str:
    parts = [p for p in re.split(r"[-/.\s]+", value) if p]
    order = fmt.lower()
    if set(order) - set("ymd") or len(order) != len(set(order)) or len(parts) != len(order):
        raise ScriptError(f"say-as date {value!r} does not match format {fmt!r}", "invalid_ssml")
    if not all(p.isascii() and p.isdigit() for p in parts):
        raise ScriptError(f"say-as date wants numbers; got {value!r}", "invalid_ssml")
    fields = {key: int(part) for key, part in zip(order, parts, strict=True)}
    if not 1 <= fields.get("m", 1) <= 12 or not 1 <= fields.get("d", 1) <= 31:
        raise ScriptError(f"say-as date {value!r} is no date", "invalid_ssml")
    year, month, day = fields.get("y"), fields.get("m"), fields.get("d")
    if lang == "zh":
        out = "".join(_ZH_DIGITS[int(d)] for d in str(year)) + "年" if year is not None else ""
        out += zh_integer(month) + "月" if month is not None else ""
        return out + (zh_integer(day) + "日" if day is not None else "")
    words: list[str] = []
    if month is not None:
        words.append(_EN_MONTHS[month - 1])
    if day is not None:
        words.append(str(num2words(day, to="ordinal")))
    text = " ".join(words)
    if year is not None:
        text += (", " if text else "") + str(num2words(year, to="year"))
    return text


_TIME_RE: Final = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([ap]\.?m\.?)?$", re.IGNORECASE)


def _time(value: str, lang: str) -> str:
    match = _TIME_RE.match(value)
    if match is None or int(match.group(1)) > 24 or int(match.group(2)) > 59:
        raise ScriptError(f"say-as time wants H:MM or H:MM:SS; got {value!r}", "invalid_ssml")
    hour, minute = int(match.group(1)), int(match.group(2))
    second = int(match.group(3)) if match.group(3) else 0
    meridiem = (match.group(4) or "").replace(".", "").lower()
    if lang == "zh":
        prefix = {"am": "上午", "pm": "下午"}.get(meridiem, "")
        out = prefix + zh_integer(hour) + "点"
        if minute:
            out += ("零" if minute < 10 else "") + zh_integer(minute) + "分"
        return out + (zh_integer(second) + "秒" if second else "")
    words = [str(num2words(hour))]
    if minute == 0 and not second:
        words.append("o'clock" if meridiem or hour <= 12 else "hundred")
    else:
        words.append(("oh " if minute < 10 else "") + str(num2words(minute)))
    if second:
        words.append("and " + str(num2words(second)) + (" second" if second == 1 else " seconds"))
    if meridiem:
        words.append(meridiem.upper().replace("AM", "A M").replace("PM", "P M"))
    return " ".join(words)


def _telephone(value: str, lang: str) -> str:
    if not re.fullmatch(r"[+\d\s().-]+", value) or not re.search(r"\d", value):
        raise ScriptError(f"say-as telephone wants a telephone number; got {value!r}", "invalid_ssml")
    groups = re.findall(r"\d+", value)
    spoken = [("" if lang == "zh" else " ").join(_digit_word(d, lang, phone=True) for d in g) for g in groups]
    plus = ("加" if lang == "zh" else "plus ") if value.strip().startswith("+") else ""
    return plus + (" " if lang == "zh" else ", ").join(spoken)
