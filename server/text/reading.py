"""Reading a request's input as a script: an SSML document (ssml.py) or plain text with pause
tags (script.py)."""

from __future__ import annotations

from server.text.script import Counts, Pause, Script, Spoken, check_total_pause, is_ssml, split_pause_tags
from server.text.ssml import read_ssml


def read_script(text: str, language: str | None = None) -> Script:
    """The script of a request's input: SSML when it is a `<speak>` document, else plain text
    with pause tags. `language` (a canonical name) is the request's, for say-as where no
    `xml:lang` says. Raises ScriptError for a malformed tag or document."""
    if is_ssml(text):
        return read_ssml(text, language)
    items = split_pause_tags(text)
    check_total_pause(items)
    counts = Counts(pauses=sum(isinstance(item, Pause) for item in items))
    if not items:
        return Script((Spoken(text.strip()),), counts=counts)
    return Script(tuple(items), counts=counts)
