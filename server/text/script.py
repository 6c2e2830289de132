"""A script: what a request's input asks to be read, before it is cut into segments.

Plain input is text with pause tags (`[pause:0.5s]`, `[pause:700ms]`: Kokoro-FastAPI's form,
so its users' texts work); an input that opens with `<speak` is an SSML document
(server/text/ssml.py). Either becomes the same thing: a sequence of spoken runs (text with
the voice, language, rate and volume it is read in) and pauses (a number of samples of
silence at the model's 24 kHz, so the silence is exact to the sample). Planning cuts the
spoken runs into segments and puts the pauses between them (server/speech/scripted.py); reading.py tells the two apart.

A malformed tag is refused (ScriptError, a 400 naming it), never read aloud: `[pause:` with anything but a
duration after it is a mistake the client wants to hear about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

# The model's rate (the codec's 24 kHz); kept here so the text layer needs no engine import.
MODEL_RATE: Final = 24_000
# One pause, and all of a request's pauses together: long enough for any reading, short
# enough that silence cannot be used to hold memory (60 s is 5.8 MB of float32).
MAX_PAUSE_SECONDS: Final = 10.0
MAX_TOTAL_PAUSE_SECONDS: Final = 60.0

# One word, no blanks inside: a splitter that cuts long text at blanks never cuts a tag.
_PAUSE_TAG_RE: Final = re.compile(r"\[pause:(\d+(?:\.\d+)?|\.\d+)(ms|s)\]", re.IGNORECASE)
_PAUSE_OPEN_RE: Final = re.compile(r"\[pause\b", re.IGNORECASE)


@dataclass(frozen=True)
class Voicing:
    """How a run is read, where it differs from the request: a voice name (as the request's
    `voice` field takes it), a language (as its `language` field), a rate multiplying the
    request's speed and a linear gain multiplying its gain."""

    voice: str | None = None
    language: str | None = None
    rate: float = 1.0
    gain: float = 1.0


@dataclass(frozen=True)
class Spoken:
    """Text to read. `written` is the text as the client wrote it when what is read differs
    (a `sub` alias, a say-as rendering, a pronunciation); `marks` are SSML marks inside it,
    each with the offset in `text` it stands before."""

    text: str
    voicing: Voicing = Voicing()
    written: str | None = None
    marks: tuple[tuple[int, str], ...] = ()
    # The spans read differently from how they were written, in order, when `written` is set:
    # (start, end) in `text`, then (start, end) in `written`.
    replaced: tuple[tuple[int, int, int, int], ...] = ()

    @property
    def shown(self) -> str:
        return self.text if self.written is None else self.written


@dataclass(frozen=True)
class Pause:
    """Silence, in samples at the model's rate."""

    samples: int


Item = Spoken | Pause


class ScriptError(ValueError):
    """Input that cannot be read as asked (a malformed tag, an SSML element the model cannot
    follow); the speech layer answers it as a 400 on `input` with `code`."""

    def __init__(self, message: str, code: str = "invalid_input") -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Counts:
    """What the request log reports of a script (never the text itself)."""

    pauses: int = 0
    ssml_elements: int = 0
    pronunciation_hits: int = 0

    def describe(self) -> dict[str, int]:
        return {name: value for name, value in vars(self).items() if value}


@dataclass(frozen=True)
class Script:
    items: tuple[Item, ...]
    ssml: bool = False
    counts: Counts = field(default_factory=Counts)

    @property
    def plain(self) -> bool:
        """One run in the request's own voicing and nothing else: planned as input always was."""
        return (
            len(self.items) == 1
            and isinstance(self.items[0], Spoken)
            and self.items[0].voicing == Voicing()
            and not self.items[0].marks
            and self.items[0].written is None
        )

    @property
    def spoken_text(self) -> str:
        """Everything read, in order (for language detection and the length checks)."""
        return " ".join(item.text for item in self.items if isinstance(item, Spoken))


def pause_samples(seconds: float) -> int:
    """A pause's length in samples at the model's rate (rounded to the nearest sample)."""
    if not 0 <= seconds <= MAX_PAUSE_SECONDS:
        raise ScriptError(f"a pause lasts at most {MAX_PAUSE_SECONDS:g} s; got {seconds:g} s", "invalid_pause")
    return round(seconds * MODEL_RATE)


def check_total_pause(items: tuple[Item, ...] | list[Item]) -> None:
    total = sum(item.samples for item in items if isinstance(item, Pause))
    if total > MAX_TOTAL_PAUSE_SECONDS * MODEL_RATE:
        raise ScriptError(f"a request's pauses last at most {MAX_TOTAL_PAUSE_SECONDS:g} s together", "invalid_pause")


def _tag_seconds(match: re.Match[str]) -> float:
    value = float(match.group(1))
    return value / 1000 if match.group(2).lower() == "ms" else value


def split_pause_tags(text: str, voicing: Voicing = Voicing()) -> list[Item]:
    """Plain text with pause tags as spoken runs and pauses, in order. Blank runs between
    tags are dropped (a tag may open or close the text, or follow another)."""
    items: list[Item] = []
    cursor = 0
    for match in _PAUSE_TAG_RE.finditer(text):
        _spoken(items, text[cursor : match.start()], voicing)
        items.append(Pause(pause_samples(_tag_seconds(match))))
        cursor = match.end()
    _spoken(items, text[cursor:], voicing)
    return items


def _spoken(items: list[Item], text: str, voicing: Voicing) -> None:
    bad = _PAUSE_OPEN_RE.search(text)
    if bad is not None:
        shown = text[bad.start() : bad.start() + 24]
        raise ScriptError(f"malformed pause tag at {shown!r}: write [pause:0.5s] or [pause:500ms]", "invalid_pause")
    if text.strip():
        items.append(Spoken(text.strip(), voicing))


def is_ssml(text: str) -> bool:
    """An SSML document: input that opens with `<speak`, or with an XML declaration or a
    DOCTYPE (which only a document has: it is read as one, and a DOCTYPE refused)."""
    return text.lstrip().startswith(("<speak", "<?xml", "<!DOCTYPE", "<!doctype"))
