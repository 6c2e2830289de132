"""Subtitles from timed segments: SubRip (SRT) and WebVTT, one cue per segment (a sentence
on the captioned endpoint), spanning the segment's audio.

SRT has no way to time words inside a cue, so its cues are the sentences. WebVTT does: each
word after the first that starts later carries an inline timestamp tag (`<00:00:01.240>`),
which players use for karaoke-style highlighting. The cue text is the input as written
(punctuation and case kept); the tags go before the words the aligner timed, found in the
text in order (its processor only drops characters and splits, so each unit is a
subsequence of the text).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from server.speech.spoken_words import find_positions
from server.speech.timestamps import SegmentWords, Word

SubtitleFormat = Literal["srt", "vtt"]
SUBTITLE_MEDIA_TYPES: dict[str, str] = {"srt": "application/x-subrip", "vtt": "text/vtt"}


def _clock(seconds: float, separator: str) -> str:
    millis = max(round(seconds * 1000), 0)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _cue_text(text: str) -> str:
    """One line of text, as a cue needs it (a blank line would end the cue early)."""
    return " ".join(text.split())


def word_positions(text: str, words: Sequence[Word]) -> list[int] | None:
    """Where each word starts in `text`, in order; None when one cannot be found there."""
    return find_positions(text, [word.word for word in words])


def _escaped(text: str) -> str:
    """Cue text as WebVTT reads it: `&`, `<` and `>` would start markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _timed_text(text: str, segment: SegmentWords) -> str:
    """The cue's text with a timestamp tag before each word that starts inside the cue,
    later than the one before (WebVTT wants them strictly increasing, within the cue)."""
    positions = word_positions(text, segment.words)
    if positions is None:
        return _escaped(text)
    pieces: list[str] = []
    last_cut, last_time = 0, segment.start
    for word, position in zip(segment.words, positions, strict=True):
        start = round(word.start, 3)
        if last_time < start < segment.end:
            pieces.append(_escaped(text[last_cut:position]))
            pieces.append(f"<{_clock(start, '.')}>")
            last_cut, last_time = position, start
    pieces.append(_escaped(text[last_cut:]))
    return "".join(pieces)


def _cues(segments: Sequence[SegmentWords]) -> list[tuple[SegmentWords, str]]:
    return [(s, _cue_text(s.text)) for s in segments if s.end > s.start and _cue_text(s.text)]


def to_srt(segments: Sequence[SegmentWords]) -> str:
    blocks = [
        f"{number}\n{_clock(segment.start, ',')} --> {_clock(segment.end, ',')}\n{text}\n"
        for number, (segment, text) in enumerate(_cues(segments), start=1)
    ]
    return "\n".join(blocks)


def to_vtt(segments: Sequence[SegmentWords]) -> str:
    blocks = ["WEBVTT\n"]
    blocks += [
        f"{_clock(segment.start, '.')} --> {_clock(segment.end, '.')}\n{_timed_text(text, segment)}\n"
        for segment, text in _cues(segments)
    ]
    return "\n".join(blocks)


def render_subtitles(segments: Sequence[SegmentWords], fmt: SubtitleFormat) -> str:
    return to_srt(segments) if fmt == "srt" else to_vtt(segments)
