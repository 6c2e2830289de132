"""Chapters written into the result file where its format has a standard place for them,
by mutagen: ID3v2 chapter frames (CTOC and CHAP, each with its title) in MP3, and the
Vorbis-comment chapter fields (CHAPTER001=00:00:00.000, CHAPTER001NAME=...) in FLAC, Ogg
Vorbis and Ogg Opus. Other formats (WAV, AAC in ADTS, raw PCM) have none: their chapters
are the chapter list alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mutagen
from mutagen.id3 import CHAP, CTOC, ID3, TIT2, CTOCFlags

TAGGED_FORMATS = frozenset({"mp3", "flac", "ogg", "opus"})


def _clock(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def write_chapters(path: Path, fmt: str, chapters: list[dict[str, Any]]) -> bool:
    """Write `chapters` (the chapter list: title, start, end in seconds) into the file at
    `path`; False when the format has no place for them (or there are none)."""
    if not chapters or fmt not in TAGGED_FORMATS:
        return False
    titles = [str(chapter["title"] or f"Chapter {n + 1}") for n, chapter in enumerate(chapters)]
    if fmt == "mp3":
        _write_id3(path, chapters, titles)
        return True
    audio = mutagen.File(str(path))
    if audio is None:
        return False
    if audio.tags is None:
        audio.add_tags()
    for n, (chapter, title) in enumerate(zip(chapters, titles, strict=True), start=1):
        audio.tags[f"CHAPTER{n:03d}"] = [_clock(chapter["start"])]
        audio.tags[f"CHAPTER{n:03d}NAME"] = [title]
    audio.save()
    return True


def _write_id3(path: Path, chapters: list[dict[str, Any]], titles: list[str]) -> None:
    """A CTOC (top level, ordered) naming one CHAP per chapter, each with its times in
    milliseconds and its title (mutagen's ID3 classes carry no type annotations)."""
    tags: Any = ID3()  # type: ignore[no-untyped-call]
    ids = [f"chp{n}" for n in range(len(chapters))]
    flags = CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED
    tags.add(CTOC(element_id="toc", flags=flags, child_element_ids=ids))  # type: ignore[no-untyped-call]
    for element, chapter, title in zip(ids, chapters, titles, strict=True):
        start, end = round(chapter["start"] * 1000), round(chapter["end"] * 1000)
        title_frame: Any = TIT2(text=[title])  # type: ignore[no-untyped-call]
        chap: Any = CHAP(element_id=element, start_time=start, end_time=end, sub_frames=[title_frame])  # type: ignore[no-untyped-call]
        tags.add(chap)
    tags.save(str(path), v2_version=4)
