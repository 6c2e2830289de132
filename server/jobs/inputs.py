"""A job's body and how its text becomes numbered segments.

The body has the speech endpoint's fields under the same names (model, voice, response_format,
language, instructions, speed, seed, the sampling fields, sample_rate, gain) and one of:

- `input`: long text. With `input_format: markdown` (the default) a heading line (`# Title`)
  starts a chapter and the usual inline marks (emphasis, code, links) are read as their text;
- `inputs`: a list of items, each with its own `input` and optionally `voice`,
  `instructions`, `language` and `chapter` (the title of the chapter it starts);
- `input` with a `speakers` map: each line `Name: text` whose Name is in the map is a turn in
  that voice (a dialogue, a podcast); an untagged line continues the turn before it.

Blank lines separate paragraphs. Each paragraph is cut into pieces by the same rules as a
speech request (server/text/pieces.py); each piece is one segment, generated in one go with
its own seed. Silence goes between paragraphs, items (speaker turns) and chapters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from server.errors import invalid_request, payload_too_large
from server.jobs.records import SegmentSpec
from server.speech.requests import MAX_INPUT_CHARS, VoiceFields, VoiceName
from server.text.pieces import split_pieces

MAX_PAUSE_MS = 10_000
MAX_CHAPTER_CHARS = 512

_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+")
_QUOTE_MARK = re.compile(r"^\s*>\s?")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*{1,3}|_{2,3}|`+|~~)")
_RULE = re.compile(r"^\s*([-*_])(\s*\1){2,}\s*$")


class JobItem(BaseModel):
    """One item of `inputs`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    input: str = Field(min_length=1)
    voice: VoiceName | None = None
    instructions: str | None = Field(default=None, max_length=MAX_INPUT_CHARS)
    language: str | None = Field(default=None, max_length=32)
    chapter: str | None = Field(default=None, min_length=1, max_length=MAX_CHAPTER_CHARS)


class JobRequest(VoiceFields):
    """POST /v1/audio/jobs. `voice` is the voice of everything no item or speaker names."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, strict=True)

    input: str | None = Field(default=None, min_length=1)
    inputs: list[JobItem] | None = Field(default=None, min_length=1)
    speakers: dict[str, VoiceName] | None = Field(default=None, min_length=1)
    input_format: Literal["text", "markdown"] = "markdown"
    paragraph_pause_ms: int = Field(default=600, ge=0, le=MAX_PAUSE_MS)
    item_pause_ms: int = Field(default=400, ge=0, le=MAX_PAUSE_MS)
    chapter_pause_ms: int = Field(default=1500, ge=0, le=MAX_PAUSE_MS)
    # Word timestamps from the aligner slot (ALIGNER_MODEL_ID) for every segment.
    timestamps: bool = False

    @model_validator(mode="after")
    def _one_input(self) -> JobRequest:
        if (self.input is None) == (self.inputs is None):
            raise ValueError("give either input (text) or inputs (a list of items)")
        if self.speakers is not None and self.input is None:
            raise ValueError("speakers tags lines of input; with inputs give each item its voice")
        return self


@dataclass(frozen=True)
class _Block:
    """A paragraph in one voice: cut into segments, followed by a pause."""

    text: str
    voice: str
    instructions: str | None = None
    language: str | None = None
    chapter: str | None = None  # starts this chapter
    item_end: bool = False  # the last paragraph of an item (or a speaker's turn)


def text_bytes(request: JobRequest) -> int:
    """The size of the job's text (what JOBS_MAX_INPUT_BYTES bounds)."""
    if request.input is not None:
        return len(request.input.encode())
    return sum(len(item.input.encode()) for item in request.inputs or ())


def plain_line(line: str) -> str:
    """A Markdown line as it is read aloud: list and quote marks, emphasis and link targets
    dropped (the link's text is kept)."""
    line = _QUOTE_MARK.sub("", line)
    line = _LIST_MARK.sub("", line)
    line = _LINK.sub(r"\1", line)
    return _EMPHASIS.sub("", line)


def paragraphs(text: str, markdown: bool) -> list[tuple[str | None, str]]:
    """(chapter title or None, paragraph) pairs in order; a heading gives its title to the
    next paragraph. A heading with nothing after it starts no chapter."""
    found: list[tuple[str | None, str]] = []
    title: str | None = None
    lines: list[str] = []

    def close() -> None:
        nonlocal title
        joined = " ".join(part.strip() for part in lines if part.strip())
        lines.clear()
        if joined:
            found.append((title, joined))
            title = None

    for line in text.splitlines():
        if not line.strip():
            close()
            continue
        if markdown:
            heading = _HEADING.match(line)
            if heading:
                close()
                title = plain_line(heading.group(2)).strip()[:MAX_CHAPTER_CHARS] or None
                continue
            if _RULE.match(line):
                close()
                continue
            line = plain_line(line)
        lines.append(line)
    close()
    return found


def _speaker_blocks(request: JobRequest, text: str) -> list[_Block]:
    """Dialogue: a line `Name: words` opens a turn in the speaker's voice; a heading starts a
    chapter at the next turn (or the next paragraph of this one)."""
    speakers = request.speakers or {}
    markdown = request.input_format == "markdown"
    tag = re.compile(r"^\s*(" + "|".join(re.escape(name) for name in speakers) + r")\s*:\s*(.*)$")
    turns: list[tuple[str, str | None, list[str]]] = []  # voice, the chapter it starts, lines
    title: str | None = None
    for line in text.splitlines():
        heading = _HEADING.match(line) if markdown else None
        if heading:
            title = plain_line(heading.group(2)).strip()[:MAX_CHAPTER_CHARS] or None
            continue
        match = tag.match(line)
        if match:
            turns.append((speakers[match.group(1)], title, [match.group(2)]))
            title = None
        elif line.strip() and (title is not None or not turns):
            turns.append((turns[-1][0] if turns else request.voice_name, title, [line]))
            title = None
        elif turns:
            turns[-1][2].append(line)
    blocks: list[_Block] = []
    for voice, chapter, lines in turns:
        parts = paragraphs("\n".join(lines), markdown)
        for n, (inner, paragraph) in enumerate(parts):
            starts = chapter if n == 0 else inner
            blocks.append(_Block(paragraph, voice, chapter=starts, item_end=n == len(parts) - 1))
    return blocks


def _blocks(request: JobRequest) -> list[_Block]:
    markdown = request.input_format == "markdown"
    if request.input is not None:
        if request.speakers:
            return _speaker_blocks(request, request.input)
        return [_Block(text, request.voice_name, chapter=title) for title, text in paragraphs(request.input, markdown)]
    blocks: list[_Block] = []
    for item in request.inputs or ():
        parts = paragraphs(item.input, markdown)
        for n, (title, text) in enumerate(parts):
            chapter = item.chapter if n == 0 and item.chapter else title
            blocks.append(
                _Block(
                    text,
                    item.voice or request.voice_name,
                    item.instructions,
                    item.language,
                    chapter,
                    item_end=n == len(parts) - 1,
                )
            )
    return blocks


def plan_segments(request: JobRequest, max_bytes: int) -> list[SegmentSpec]:
    """The job's segments in order, each with the silence that follows it. Raises APIError:
    413 past `max_bytes` of text, 400 when there is nothing to speak."""
    size = text_bytes(request)
    if size > max_bytes:
        raise payload_too_large(
            f"the job's text is {size} bytes; the limit is {max_bytes} (JOBS_MAX_INPUT_BYTES)",
            param="inputs" if request.inputs is not None else "input",
        )
    per_sentence = request.speed != 1.0  # time-stretching needs whole phrases, as on /v1/audio/speech
    segments: list[SegmentSpec] = []
    ends: list[str] = []  # what each segment ends: "piece", "paragraph" or "item"
    for block in _blocks(request):
        pieces = [p for p in split_pieces(block.text, per_sentence=per_sentence) if p.strip()]
        for n, piece in enumerate(pieces):
            segments.append(
                SegmentSpec(
                    piece,
                    block.voice,
                    block.instructions or request.instructions,
                    block.language or request.language,
                    block.chapter if n == 0 else None,
                )
            )
            last = n == len(pieces) - 1
            ends.append("item" if last and block.item_end else "paragraph" if last else "piece")
    if not segments:
        raise invalid_request("the job has no text to speak", param="input")
    pauses = {"piece": 0, "paragraph": request.paragraph_pause_ms, "item": request.item_pause_ms}
    for i in range(len(segments) - 1):
        pause = request.chapter_pause_ms if segments[i + 1].chapter else pauses[ends[i]]
        segments[i] = replace(segments[i], pause_after_ms=pause)
    return segments


def chapter_starts(segments: list[SegmentSpec]) -> list[tuple[int, str | None]]:
    """(first segment, title) of each chapter; text before the first heading is a chapter
    without a title. No headings: no chapters."""
    starts: list[tuple[int, str | None]] = [(i, s.chapter) for i, s in enumerate(segments) if s.chapter]
    if starts and starts[0][0] != 0:
        starts.insert(0, (0, None))
    return starts
