"""The server-wide pronunciations (PRONUNCIATIONS_FILE), and a request's own list, as one
lexicon for the planner.

The file is JSON or YAML (a list of entries, or `{"pronunciations": [...]}`, each entry
`{text, alias, language?, case_sensitive?, whole_word?}`), or a W3C PLS lexicon (`.pls`,
`.xml`) whose lexemes have an `<alias>`: its graphemes are read as the alias, in the
lexicon's `xml:lang`. A lexeme with phonemes only is refused: the model takes no phonemes.

The file is looked at again (its modification time and size) whenever a request is planned,
and read again when it changed; a change that does not parse keeps the entries before it
and is logged, so an edit in progress never takes speech down. At startup a bad file stops
the server.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final
from xml.etree.ElementTree import ParseError

import orjson
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from pydantic import ValidationError

from server.speech.requests import PronunciationEntry
from server.text.language import UnsupportedLanguageError, normalize_language
from server.text.pronunciations import MAX_ENTRIES, Lexicon, Pronunciation

log = logging.getLogger("qwen3-tts.pronunciations")

MAX_FILE_BYTES: Final = 4 * 1024 * 1024
_PLS_NS: Final = "{http://www.w3.org/2005/01/pronunciation-lexicon}"
_XML_LANG: Final = "{http://www.w3.org/XML/1998/namespace}lang"


class PronunciationFileError(ValueError):
    """A pronunciation file that cannot be used (its path and what is wrong)."""


def entry_of(entry: PronunciationEntry) -> Pronunciation:
    """A validated entry (a request's or a file's), its language in canonical form."""
    language = None
    if entry.language is not None and entry.language.strip():
        language = normalize_language(entry.language)  # UnsupportedLanguageError when unknown
    return Pronunciation(entry.text, entry.alias, language, entry.case_sensitive, entry.whole_word)


def _entries(data: Any, where: str) -> list[Pronunciation]:
    if isinstance(data, dict) and set(data) == {"pronunciations"}:
        data = data["pronunciations"]
    if not isinstance(data, list):
        raise PronunciationFileError(f"{where}: a list of entries, or {{'pronunciations': [...]}}")
    if len(data) > MAX_ENTRIES:
        raise PronunciationFileError(f"{where}: at most {MAX_ENTRIES} entries")
    out: list[Pronunciation] = []
    for index, raw in enumerate(data):
        try:
            out.append(entry_of(PronunciationEntry.model_validate(raw)))
        except (ValidationError, UnsupportedLanguageError) as exc:
            raise PronunciationFileError(f"{where}: entry {index}: {exc}") from exc
    return out


def parse_pls(text: str, where: str) -> list[Pronunciation]:
    """A W3C PLS lexicon's lexemes that have an alias."""
    try:
        root = fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (DefusedXmlException, ParseError) as exc:
        raise PronunciationFileError(f"{where}: not a PLS lexicon: {exc}") from exc
    if root.tag not in (_PLS_NS + "lexicon", "lexicon"):
        raise PronunciationFileError(f"{where}: a PLS file's root is <lexicon>")
    language = None
    if root.get(_XML_LANG):
        try:
            language = normalize_language(root.get(_XML_LANG, ""))
        except UnsupportedLanguageError as exc:
            raise PronunciationFileError(f"{where}: {exc}") from exc
    out: list[Pronunciation] = []
    for index, lexeme in enumerate(node for node in root if node.tag.endswith("lexeme")):
        graphemes = [g.text.strip() for g in lexeme if g.tag.endswith("grapheme") and g.text and g.text.strip()]
        aliases = [a.text.strip() for a in lexeme if a.tag.endswith("alias") and a.text and a.text.strip()]
        if not graphemes or not aliases:
            raise PronunciationFileError(
                f"{where}: lexeme {index} needs a <grapheme> and an <alias> (the model takes no phonemes)"
            )
        out += [Pronunciation(grapheme, aliases[0], language) for grapheme in graphemes]
    if len(out) > MAX_ENTRIES:
        raise PronunciationFileError(f"{where}: at most {MAX_ENTRIES} entries")
    return out


def read_pronunciations(path: Path) -> list[Pronunciation]:
    """The entries of a pronunciation file, by its suffix: .json, .yaml/.yml, .pls/.xml."""
    where = f"PRONUNCIATIONS_FILE {path}"
    if not path.is_file():
        raise PronunciationFileError(f"{where}: not a regular file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise PronunciationFileError(f"{where}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PronunciationFileError(f"{where}: {exc}") from exc
    suffix = path.suffix.lower()
    if suffix in (".pls", ".xml"):
        return parse_pls(text, where)
    if suffix == ".json":
        try:
            return _entries(orjson.loads(text), where)
        except orjson.JSONDecodeError as exc:
            raise PronunciationFileError(f"{where}: {exc}") from exc
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            return _entries(yaml.safe_load(text), where)
        except yaml.YAMLError as exc:
            raise PronunciationFileError(f"{where}: {exc}") from exc
    raise PronunciationFileError(f"{where}: must end in .json, .yaml, .yml, .pls or .xml")


class Pronunciations:
    """The server's file (none when PRONUNCIATIONS_FILE is unset), read again when it changes."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._lexicon = Lexicon(())
        if path is not None:
            self._lexicon = Lexicon(read_pronunciations(path))  # a bad file stops startup
            self._stamp = self._stat()

    def _stat(self) -> tuple[int, int] | None:
        assert self.path is not None
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def file_lexicon(self) -> Lexicon:
        """The file's entries, read again first when the file changed."""
        if self.path is None:
            return self._lexicon
        stamp = self._stat()
        if stamp != self._stamp:
            try:
                self._lexicon = Lexicon(read_pronunciations(self.path))
                log.info("pronunciations reloaded", extra={"entries": len(self._lexicon.entries)})
            except PronunciationFileError as exc:
                log.error("pronunciations not reloaded; the entries before stay", extra={"error": str(exc)})
            self._stamp = stamp
        return self._lexicon

    def lexicon(self, request_entries: Sequence[Pronunciation] = ()) -> Lexicon:
        """A request's entries (first: they win over the file's of the same length) and the file's."""
        base = self.file_lexicon()
        if not request_entries:
            return base
        return Lexicon((*request_entries, *base.entries))
