"""What a finished job gives: one audio file encoded from its segments' files (with the
pauses between them), and the timeline those same files and pauses make: each segment's
start and end, subtitles (one cue per segment) and the chapter list.

The result is encoded from the files alone, in segment order, through the same streaming
resampler and encoders as /v1/audio/speech: the same segments always make the same bytes,
however their generation was scheduled or interrupted.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from server.audio.dsp import SAMPLE_RATE, to_pcm16_bytes
from server.audio.encoders import create_encoder, wav_header
from server.audio.resample import StreamResampler
from server.jobs.inputs import chapter_starts
from server.jobs.records import SegmentRow
from server.jobs.tags import write_chapters
from server.speech.subtitles import SubtitleFormat, render_subtitles
from server.speech.timestamps import SegmentWords, Word


@dataclass(frozen=True)
class Placed:
    """A finished segment where it lies in the result, in seconds."""

    index: int
    text: str
    voice: str
    start: float
    end: float


def pause_samples(milliseconds: int) -> int:
    return SAMPLE_RATE * milliseconds // 1000


def timeline(segments: list[SegmentRow]) -> list[Placed]:
    """Each done segment's start and end: the samples and pauses before it, at 24 kHz (the
    rate the result is resampled from, so the times hold at every output rate)."""
    placed: list[Placed] = []
    cursor = 0
    for segment in segments:
        if not segment.done:
            break
        samples = segment.samples or 0
        placed.append(
            Placed(
                segment.index,
                segment.spec.text,
                segment.spec.voice,
                cursor / SAMPLE_RATE,
                (cursor + samples) / SAMPLE_RATE,
            )
        )
        cursor += samples + pause_samples(segment.spec.pause_after_ms)
    return placed


def subtitles(segments: list[SegmentRow], fmt: SubtitleFormat) -> str:
    words = {s.index: s.words or [] for s in segments}
    cues = [
        SegmentWords(
            p.index, p.text, p.start, p.end, tuple(Word(w, p.start + a, p.start + b) for w, a, b in words[p.index])
        )
        for p in timeline(segments)
    ]
    return render_subtitles(cues, fmt)


def chapters(segments: list[SegmentRow]) -> list[dict[str, object]]:
    """The chapter list: title, start and end (seconds) and the segments each spans."""
    placed = timeline(segments)
    starts = chapter_starts([s.spec for s in segments])
    found: list[dict[str, object]] = []
    for n, (first, title) in enumerate(starts):
        last = starts[n + 1][0] - 1 if n + 1 < len(starts) else len(segments) - 1
        if last >= len(placed):
            break
        found.append(
            {
                "index": n,
                "title": title,
                "start": round(placed[first].start, 3),
                "end": round(placed[last].end, 3),
                "first_segment": first,
                "last_segment": last,
            }
        )
    return found


def _pieces(segments: list[SegmentRow], segment_path: list[Path]) -> Iterator[np.ndarray]:
    """Each segment's audio then its pause, read one at a time."""
    for segment, path in zip(segments, segment_path, strict=True):
        yield np.fromfile(path, dtype=np.float32)
        pause = pause_samples(segment.spec.pause_after_ms)
        if pause:
            yield np.zeros(pause, dtype=np.float32)


def encode_result(segments: list[SegmentRow], paths: list[Path], fmt: str, sample_rate: int, target: Path) -> int:
    """Encode the result file (written aside, then renamed); returns its size. WAV is written
    as it goes and its header sizes patched at the end, so a book never sits in memory. The
    chapters go into the file where its format has a place for them (tags.py)."""
    partial = target.with_suffix(target.suffix + ".partial")
    resampler = StreamResampler(sample_rate)
    with partial.open("wb") as out:
        if fmt == "wav":
            out.write(wav_header(sample_rate, 0))
            data = 0
            for pcm in _pieces(segments, paths):
                chunk = to_pcm16_bytes(resampler.process(pcm))
                out.write(chunk)
                data += len(chunk)
            tail = to_pcm16_bytes(resampler.finish())
            out.write(tail)
            out.seek(0)
            out.write(wav_header(sample_rate, data + len(tail)))
        else:
            encoder = create_encoder(fmt, streaming=False, sample_rate=sample_rate)
            for pcm in _pieces(segments, paths):
                out.write(encoder.encode(resampler.process(pcm)))
            out.write(encoder.encode(resampler.finish()))
            out.write(encoder.finish())
    write_chapters(partial, fmt, chapters(segments))
    with partial.open("rb+") as out:
        os.fsync(out.fileno())
    os.replace(partial, target)
    return target.stat().st_size
