"""The SSML subset the server reads: a `<speak>` document becomes a script (script.py).

What each element does (docs/text-control.md lists the same):
- `speak`, `p`, `s`: containers; `xml:lang` on any of them sets the language inside;
- `break`: a pause of `time` ("700ms", "1.5s") or of its `strength` (none 0, x-weak 0.25 s,
  weak 0.5 s, medium 0.75 s, strong 1 s, x-strong 1.25 s; medium when neither is given);
- `sub alias="..."`: the alias is read, the text is what captions show;
- `say-as interpret-as=...`: characters, cardinal, ordinal, digits, date (with `format`),
  time, telephone, written out in words (say_as.py);
- `prosody rate volume`: rate as speed, volume as gain; pitch and the rest are refused;
- `lang xml:lang`, `voice name`: the language, the voice (several voices in one document);
- `mark name`: reported with the word timestamps.
Anything else (`phoneme`: the model has no phoneme input; `audio`: the server fetches no
URL; `emphasis`: the model cannot be told to stress a word; unknown elements and attributes)
is refused with a 400 that names it, never skipped.

Parsing is hardened: a DOCTYPE (and so any entity, internal or external) is refused before
the parser sees the document, and nesting is measured by a scan of the tags, in linear time
and constant memory, before anything is built; then defusedxml parses it (with DTDs,
entities and external references forbidden again, as a second line).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Final
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from server.text.language import UnsupportedLanguageError, normalize_language
from server.text.say_as import render
from server.text.script import (
    MODEL_RATE,
    Counts,
    Item,
    Pause,
    Script,
    ScriptError,
    Spoken,
    Voicing,
    check_total_pause,
    pause_samples,
)

MAX_DEPTH: Final = 32
_XML_NS: Final = "{http://www.w3.org/XML/1998/namespace}"
_LANG: Final = _XML_NS + "lang"
_BLANKS_RE: Final = re.compile(r"\s+")
_TAG_RE: Final = re.compile(r"<(/?)([A-Za-z_][\w:.-]*)[^<>]*?(/?)>")

BREAK_STRENGTHS: Final = {"none": 0.0, "x-weak": 0.25, "weak": 0.5, "medium": 0.75, "strong": 1.0, "x-strong": 1.25}
RATES: Final = {"x-slow": 0.5, "slow": 0.75, "medium": 1.0, "default": 1.0, "fast": 1.25, "x-fast": 1.5}
VOLUMES_DB: Final = {"x-soft": -12.0, "soft": -6.0, "medium": 0.0, "default": 0.0, "loud": 6.0, "x-loud": 12.0}
REFUSED: Final = {
    "phoneme": "the model has no phoneme input; use sub alias with a spelling that reads right",
    "audio": "the server never fetches a URL",
    "emphasis": "the model cannot be told which word to stress",
}
# The attributes each element reads (xml:lang is read on every container).
_ATTRIBUTES: Final[dict[str, frozenset[str]]] = {
    "speak": frozenset({"version", _LANG, "{http://www.w3.org/2001/XMLSchema-instance}schemaLocation"}),
    "p": frozenset({_LANG}),
    "s": frozenset({_LANG}),
    "lang": frozenset({_LANG}),
    "break": frozenset({"time", "strength"}),
    "sub": frozenset({"alias"}),
    "say-as": frozenset({"interpret-as", "format", "detail"}),
    "prosody": frozenset({"rate", "volume"}),
    "voice": frozenset({"name", _LANG}),
    "mark": frozenset({"name"}),
}
_SPEED_RANGE: Final = (0.25, 4.0)


def check_depth(text: str, limit: int = MAX_DEPTH) -> None:
    """Refuse nesting deeper than `limit`, and any DOCTYPE, by a scan of the tags alone."""
    if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
        raise ScriptError("SSML with a DOCTYPE or entities is refused", "invalid_ssml")
    depth = 0
    for match in _TAG_RE.finditer(text):
        if match.group(1):
            depth -= 1
        elif not match.group(3):
            depth += 1
            if depth > limit:
                raise ScriptError(f"SSML nests deeper than {limit} elements", "invalid_ssml")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _seconds(value: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s)\s*", value, re.IGNORECASE)
    if match is None:
        raise ScriptError(f'break time={value!r}: write "700ms" or "0.7s"', "invalid_ssml")
    number = float(match.group(1))
    return number / 1000 if match.group(2).lower() == "ms" else number


def _rate(value: str) -> float:
    value = value.strip().lower()
    if value in RATES:
        return RATES[value]
    match = re.fullmatch(r"([+-]?)(\d+(?:\.\d+)?)(%?)", value)
    if match is None:
        raise ScriptError(f"prosody rate={value!r}: use a keyword, a percentage or a multiplier", "invalid_ssml")
    sign, number, percent = match.group(1), float(match.group(2)), match.group(3)
    if sign:  # relative: "+20%" is 1.2 times, "-10%" 0.9 times
        delta = number / 100 if percent else number
        return 1.0 + delta if sign == "+" else 1.0 - delta
    return number / 100 if percent else number


def _gain(value: str) -> float:
    value = value.strip().lower()
    if value == "silent":
        return 0.0
    if value in VOLUMES_DB:
        return float(10 ** (VOLUMES_DB[value] / 20))
    match = re.fullmatch(r"([+-]?\d+(?:\.\d+)?)\s*db", value)
    if match is None:
        raise ScriptError(
            f"prosody volume={value!r}: use a keyword (x-soft to x-loud, silent) or decibels such as +6dB",
            "invalid_ssml",
        )
    return float(10 ** (float(match.group(1)) / 20))


def _language(value: str) -> str:
    try:
        return normalize_language(value)
    except UnsupportedLanguageError as exc:
        raise ScriptError(f"xml:lang: {exc}", "unsupported_language") from exc


_SAY_AS_LANG: Final = {
    "English": "en",
    "Chinese": "zh",
    "German": "de",
    "French": "fr",
    "Russian": "ru",
    "Portuguese": "pt",
    "Spanish": "es",
    "Italian": "it",
    "Japanese": "ja",
    "Korean": "ko",
}


class _Reader:
    """Walks the element tree, gathering runs of text with one voicing and the pauses between."""

    def __init__(self, default_language: str | None) -> None:
        self.items: list[Item] = []
        self.counts = Counts()
        self.default_language = default_language
        self._spoken: list[str] = []
        self._written: list[str] = []
        self._marks: list[tuple[int, str]] = []
        self._voicing = Voicing()
        self._replaced: list[tuple[int, int, int, int]] = []

    def _switch(self, voicing: Voicing) -> None:
        if voicing != self._voicing:
            self.flush()
            self._voicing = voicing

    def add(self, spoken: str, voicing: Voicing, written: str | None = None) -> None:
        """Text as the document has it: runs of blanks read as one space (XML keeps them, and
        where there are none, as between Chinese characters, none is added)."""
        spoken = _BLANKS_RE.sub(" ", spoken)
        if not spoken.strip():
            if spoken and self._spoken and not self._spoken[-1].endswith(" "):
                self._spoken.append(" ")
                self._written.append(" ")
            return
        self._switch(voicing)
        shown = spoken if written is None else _BLANKS_RE.sub(" ", written)
        if not self._spoken or self._spoken[-1].endswith(" "):
            spoken, shown = spoken.lstrip(), shown.lstrip()
        if written is not None:
            s0, w0 = len("".join(self._spoken)), len("".join(self._written))
            self._replaced.append((s0, s0 + len(spoken), w0, w0 + len(shown)))
        self._spoken.append(spoken)
        self._written.append(shown)

    def mark(self, name: str, voicing: Voicing) -> None:
        self._switch(voicing)
        self._marks.append((len("".join(self._spoken)), name))

    def pause(self, samples: int) -> None:
        self.flush()
        self.items.append(Pause(samples))
        self.counts.pauses += 1

    def flush(self, final: bool = False) -> None:
        joined = "".join(self._spoken)
        text = joined.strip()
        if text:
            lead = len(joined) - len(joined.lstrip())
            marks = tuple((min(max(offset - lead, 0), len(text)), name) for offset, name in self._marks)
            written = None
            replaced: tuple[tuple[int, int, int, int], ...] = ()
            if self._replaced:
                shown = "".join(self._written)
                written_lead = len(shown) - len(shown.lstrip())
                written = shown.strip()
                replaced = tuple(
                    (a - lead, b - lead, c - written_lead, d - written_lead) for a, b, c, d in self._replaced
                )
            self.items.append(Spoken(text, self._voicing, written, marks, replaced))
            self._marks = []
        elif self._marks and final:
            # Marks after the last words: they stand at the end of the last text.
            last = next((i for i in range(len(self.items) - 1, -1, -1) if isinstance(self.items[i], Spoken)), None)
            if last is not None:
                run = self.items[last]
                assert isinstance(run, Spoken)
                ends = tuple((len(run.text), name) for _, name in self._marks)
                self.items[last] = replace(run, marks=run.marks + ends)
            self._marks = []
        # Otherwise marks with no text yet wait for the next text (they stand at its start).
        self._spoken, self._written, self._replaced = [], [], []

    def element(self, node: Element, voicing: Voicing) -> None:
        name = _local(node.tag) if isinstance(node.tag, str) else "?"
        self.counts.ssml_elements += 1
        if name in REFUSED:
            raise ScriptError(f"SSML <{name}> is not supported: {REFUSED[name]}", "unsupported_ssml")
        if name not in _ATTRIBUTES:
            raise ScriptError(f"SSML <{name}> is not supported", "unsupported_ssml")
        unknown = sorted(set(node.attrib) - _ATTRIBUTES[name] - {"xmlns"})
        if unknown:
            raise ScriptError(f"SSML <{name}> attribute {_local(unknown[0])!r} is not supported", "unsupported_ssml")
        if _LANG in node.attrib:
            voicing = replace(voicing, language=_language(node.attrib[_LANG]))
        if name == "break":
            self._break(node)
        elif name == "mark":
            self.mark(_required(node, "name"), voicing)
        elif name == "sub":
            if len(node):
                raise ScriptError("SSML <sub> holds text only", "invalid_ssml")
            self.add(_required(node, "alias"), voicing, written=_all_text(node))
        elif name == "say-as":
            self._say_as(node, voicing)
        else:
            if name == "prosody":
                voicing = self._prosody(node, voicing)
            elif name == "voice":
                voicing = replace(voicing, voice=_required(node, "name"))
            if name in ("p", "s"):
                self.flush()
            self.add(node.text or "", voicing)
            for child in node:
                self.element(child, voicing)
                self.add(child.tail or "", voicing)
            if name in ("p", "s"):
                self.flush()
        if name in ("break", "mark") and (len(node) or (node.text or "").strip()):
            raise ScriptError(f"SSML <{name}> is empty: it holds no text or elements", "invalid_ssml")

    def _break(self, node: Element) -> None:
        if "time" in node.attrib:
            seconds = _seconds(node.attrib["time"])
        else:
            strength = node.attrib.get("strength", "medium")
            if strength not in BREAK_STRENGTHS:
                raise ScriptError(
                    f"break strength={strength!r}: use one of {', '.join(BREAK_STRENGTHS)}", "invalid_ssml"
                )
            seconds = BREAK_STRENGTHS[strength]
        self.pause(pause_samples(seconds))

    def _say_as(self, node: Element, voicing: Voicing) -> None:
        if len(node):
            raise ScriptError("SSML <say-as> holds text only", "invalid_ssml")
        written = node.text or ""
        language = voicing.language or self.default_language or "English"
        code = _SAY_AS_LANG.get(language, "en")
        spoken = render(_required(node, "interpret-as"), written, code, node.attrib.get("format"))
        self.add(spoken, voicing, written=written)

    @staticmethod
    def _prosody(node: Element, voicing: Voicing) -> Voicing:
        rate = voicing.rate * _rate(node.attrib["rate"]) if "rate" in node.attrib else voicing.rate
        if not _SPEED_RANGE[0] <= rate <= _SPEED_RANGE[1]:
            raise ScriptError(f"prosody rate gives a speed of {rate:g}; 0.25 to 4 is possible", "invalid_ssml")
        gain = voicing.gain * _gain(node.attrib["volume"]) if "volume" in node.attrib else voicing.gain
        return replace(voicing, rate=rate, gain=gain)


def _required(node: Element, attribute: str) -> str:
    value = node.attrib.get(attribute, "").strip()
    if not value:
        raise ScriptError(f"SSML <{_local(str(node.tag))}> needs {attribute}", "invalid_ssml")
    return value


def _all_text(node: Element) -> str:
    return "".join(node.itertext())


def read_ssml(text: str, language: str | None = None) -> Script:
    """The script of an SSML document (ScriptError, a 400, when it cannot be followed)."""
    check_depth(text)
    try:
        root = fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise ScriptError(f"SSML refused: {exc}", "invalid_ssml") from exc
    except ParseError as exc:
        raise ScriptError(f"SSML is not well-formed XML: {exc}", "invalid_ssml") from exc
    if _local(str(root.tag)) != "speak":
        raise ScriptError("an SSML document's root is <speak>", "invalid_ssml")
    reader = _Reader(language)  # say-as's language where no xml:lang says (else English)
    reader.element(root, Voicing())
    reader.flush(final=True)
    items = tuple(reader.items)
    check_total_pause(items)
    return Script(items, ssml=True, counts=reader.counts)


__all__ = ["MAX_DEPTH", "MODEL_RATE", "check_depth", "read_ssml"]
