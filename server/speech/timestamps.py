"""Word timestamps: each segment is aligned as soon as its audio is complete, against its own
text, while the next segment is being generated, and its words come back in order.

Protocol-free: a front door asks for a `WordTimer`, passes its `segment_done` to the speech
service's chunk loop, and sends whatever `with_words` hands it (audio, or a segment's words)
in its own shape. Times are seconds from the start of the stream the client hears: offset
by the segment's start, scaled for `speed`, clamped to the segment's audio, non-decreasing.

A failure of the aligner never loses the audio: that segment's words are empty and its
`error` says why (the log line too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from server.engine.jobs import SAMPLE_RATE
from server.engine.slots.aligner import HOW_TO_ENABLE, AlignedSpan, AlignerSlot, AlignmentError
from server.errors import invalid_request
from server.logs import request_id_var
from server.speech.planning import SpeechPlan
from server.speech.scripted import LaidSegment
from server.speech.spoken_words import mark_times, written_units
from server.speech.synthesis import SegmentAudio
from server.text import AUTO, detect_language

log = logging.getLogger("qwen3-tts.timestamps")

# Times are given to the millisecond (the aligner's bins are 80 ms wide).
TIME_DECIMALS = 3


@dataclass(frozen=True)
class Word:
    """One timed unit of the input, in seconds from the start of the stream."""

    word: str
    start: float
    end: float

    def as_json(self) -> dict[str, Any]:
        """Kokoro-FastAPI's shape, which captioning clients already read."""
        return {
            "word": self.word,
            "start_time": round(self.start, TIME_DECIMALS),
            "end_time": round(self.end, TIME_DECIMALS),
        }


@dataclass(frozen=True)
class SegmentWords:
    """The words of one segment, with where the segment lies in the stream."""

    segment: int
    text: str
    start: float
    end: float
    words: tuple[Word, ...]
    error: str | None = None  # why `words` is empty although the text has some
    spoken: str | None = None  # the text as read, where it differs from `text` (as written)
    marks: tuple[tuple[str, float], ...] = ()  # SSML marks in it: (name, seconds)

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "segment": self.segment,
            "text": self.text,
            "spoken_text": self.text if self.spoken is None else self.spoken,
            "start_time": round(self.start, TIME_DECIMALS),
            "end_time": round(self.end, TIME_DECIMALS),
            "words": [word.as_json() for word in self.words],
        }
        if self.marks:
            body["marks"] = [{"name": name, "time": round(time, TIME_DECIMALS)} for name, time in self.marks]
        if self.error is not None:
            body["error"] = self.error
        return body


def place_words(spans: Sequence[AlignedSpan], *, offset: float, speed: float, duration: float) -> tuple[Word, ...]:
    """The aligner's spans (seconds of the natural-speed audio it heard) as times in the
    stream: divided by `speed` (the stretched audio is that much shorter), clamped to the
    segment's `duration` as delivered, and made non-decreasing (every start and end at least
    the one before it: the package orders its own output, this makes the guarantee the
    server's), then moved by `offset`, the segment's start in the stream."""
    words: list[Word] = []
    floor = 0.0
    for span in spans:
        start = max(min(span.start / speed, duration), floor)
        end = max(min(span.end / speed, duration), start)
        floor = end
        words.append(Word(span.text, offset + start, offset + end))
    return tuple(words)


def aligner_language(language: str, text: str) -> str:
    """The language the aligner's processor splits by: the request's, or the script's when
    it was left to the model (`Auto`). Only Japanese and Korean split differently; every other
    language splits at spaces with one unit per CJK character."""
    if language != AUTO:
        return language
    detected = detect_language(text)
    return "English" if detected == AUTO else detected


@dataclass(frozen=True)
class Placed:
    """Where a segment lies in the stream, fixed when its audio completed."""

    index: int
    text: str
    start: float
    duration: float
    speed: float
    request_id: str | None  # of the plan it belongs to, for the log
    laid: LaidSegment | None = None  # a script's segment: its written text, marks, replaced spans


def written_words(segment: Placed, words: Sequence[Word], error: str | None = None) -> SegmentWords:
    """A segment's words as the client wrote them (spoken_words.py), with its marks timed."""
    end = segment.start + segment.duration
    laid = segment.laid
    if laid is None:
        return SegmentWords(segment.index, segment.text, segment.start, end, tuple(words), error)
    timed = [(word.word, word.start, word.end) for word in words]
    shown = written_units(laid.text, laid.written, laid.replaced, timed)
    marks = mark_times(laid.text, laid.marks, timed, segment.start if not words and laid.marks else end)
    return SegmentWords(
        segment.index,
        laid.written,
        segment.start,
        end,
        tuple(Word(word, start, stop) for word, start, stop in shown),
        error,
        spoken=laid.text if laid.text != laid.written else None,
        marks=tuple(marks),
    )


class WordTimer:
    """Times one plan's segments (or a text stream's, plan after plan: `follow`).

    `segment_done` is called by the speech service's chunk loop as each segment's audio
    completes, before its last chunk is handed on; the alignment starts at once, on the
    aligner's own thread. Words are handed back in segment order, and only once `release`
    says the audio they describe has been sent (the front door calls it after each chunk it
    sends), so a segment's words never overtake its audio: `ready` and `remaining` for a
    front door that interleaves them itself, `stream` for one that sends them from a task of
    their own as soon as they exist (a WebSocket while it waits for an LLM's next words).

    `offset` places the first plan in a longer stream."""

    def __init__(self, aligner: AlignerSlot, plan: SpeechPlan, offset: float = 0.0) -> None:
        self.aligner = aligner
        self.plan = plan
        self.position = offset  # seconds of audio delivered so far, in the stream's time
        self._pending: deque[asyncio.Task[SegmentWords]] = deque()
        self._registered = 0  # segments handed to segment_done
        self._handed = 0  # segments whose words were handed back
        self._released = 0  # segments whose audio has been sent
        self._closed = False
        self._changed = asyncio.Event()

    def follow(self, plan: SpeechPlan) -> None:
        """Time the next plan of the same stream (its segments follow the ones before, and the
        silence after the last one of the plan before)."""
        self.position += self.plan.pause_before(len(self.plan.segments)) / SAMPLE_RATE
        self.plan = plan

    def segment_done(self, audio: SegmentAudio) -> None:
        self.position += self.plan.pause_before(audio.index) / SAMPLE_RATE  # a script's pause
        start = self.position
        duration = audio.delivered_samples / SAMPLE_RATE
        self.position += duration
        text = self.plan.segments[audio.index]
        part = self.plan.part_of(audio.index)
        laid = self.plan.layout.segments[audio.index] if self.plan.layout is not None else None
        # Numbered across the stream (a text stream's plans each start at segment 0).
        segment = Placed(self._registered, text, start, duration, part.speed, request_id_var.get(), laid)
        language = aligner_language(part.job.language, text)
        task = asyncio.create_task(self._align(audio, segment, language), name=f"align-{segment.index}")
        task.add_done_callback(lambda _task: self._changed.set())
        self._pending.append(task)
        self._registered += 1

    def release(self) -> None:
        """The audio of every segment completed so far has been sent."""
        self._released = self._registered
        self._changed.set()

    def close(self) -> None:
        """No more segments will come: `stream` ends after the last one's words."""
        self._closed = True
        self.release()

    def _next_ready(self) -> bool:
        return bool(self._pending) and self._handed < self._released and self._pending[0].done()

    def _take(self) -> SegmentWords:
        self._handed += 1
        return self._pending.popleft().result()

    def ready(self) -> list[SegmentWords]:
        """The words aligned and released so far, in order (a later segment waits for an earlier one)."""
        done: list[SegmentWords] = []
        while self._next_ready():
            done.append(self._take())
        return done

    async def remaining(self) -> list[SegmentWords]:
        """Every segment's words still to come (their audio all sent), waiting for each in turn."""
        self.release()
        done: list[SegmentWords] = []
        while self._pending:
            await asyncio.wait({self._pending[0]})
            done.append(self._take())
        return done

    async def stream(self) -> AsyncGenerator[SegmentWords, None]:
        """Each segment's words as soon as they are aligned and released, until `close`."""
        while True:
            self._changed.clear()
            while self._next_ready():
                yield self._take()
            if self._closed and not self._pending:
                return
            await self._changed.wait()

    def cancel(self) -> None:
        """Drop alignments nobody will read (the client left, or synthesis failed)."""
        for task in self._pending:
            task.cancel()
        self._pending.clear()
        self._closed = True
        self._changed.set()

    async def _align(self, audio: SegmentAudio, segment: Placed, language: str) -> SegmentWords:
        try:
            spans = await self.aligner.align(audio.natural, SAMPLE_RATE, segment.text, language)
        except AlignmentError as exc:
            return self._failed(segment, str(exc))
        except Exception as exc:  # a bug must not take the audio with it
            log.exception("alignment failed", extra={"request_id": segment.request_id, "segment": segment.index})
            return self._failed(segment, f"{type(exc).__name__}: {exc}")
        words = place_words(spans, offset=segment.start, speed=segment.speed, duration=segment.duration)
        return written_words(segment, words)

    def _failed(self, segment: Placed, reason: str) -> SegmentWords:
        extra = {"request_id": segment.request_id, "segment": segment.index, "error": reason}
        log.warning("no word timestamps for a segment", extra=extra)
        return written_words(segment, (), reason)


async def with_words(
    chunks: AsyncIterator[np.ndarray], timer: WordTimer | None
) -> AsyncGenerator[np.ndarray | SegmentWords, None]:
    """The audio chunks, with each segment's words slipped in as soon as they are ready
    (always after that segment's last chunk) and the rest after the last chunk. Without a
    timer, the chunks alone. Leaving early drops the alignments still running."""
    try:
        async for pcm in chunks:
            yield pcm
            if timer is not None:  # the chunk has been handled: the words before it may follow
                timer.release()
                for words in timer.ready():
                    yield words
        if timer is not None:
            for words in await timer.remaining():
                yield words
    finally:
        if timer is not None:
            timer.cancel()
        if isinstance(chunks, AsyncGenerator):
            with contextlib.suppress(RuntimeError):  # already running: its owner closes it
                await chunks.aclose()


class WordTiming:
    """Whether this server can time words (ALIGNER_MODEL_ID set), and the timers that do."""

    def __init__(self, aligner: AlignerSlot | None) -> None:
        self.aligner = aligner

    @property
    def enabled(self) -> bool:
        return self.aligner is not None

    def require(self, param: str = "timestamps") -> AlignerSlot:
        """The aligner, or a 400 saying how to turn it on."""
        if self.aligner is None:
            raise invalid_request(HOW_TO_ENABLE, param=param, code="timestamps_unavailable")
        return self.aligner

    def timer(self, plan: SpeechPlan, offset: float = 0.0, param: str = "timestamps") -> WordTimer:
        return WordTimer(self.require(param), plan, offset)
