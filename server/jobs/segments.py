"""One segment's work, apart from the runner that schedules it: the speech options it is
planned with (from the stored request, with its own seed), its audio file, and who holds a
lease on it."""

from __future__ import annotations

import logging
import os
import secrets
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from server.engine.jobs import SAMPLE_RATE, SamplingParams
from server.engine.sequence import segment_seed
from server.engine.slots.aligner import AlignerSlot, AlignmentError
from server.jobs.records import SegmentRow
from server.speech.planning import SpeechOptions, SpeechPlan, pronunciations_of
from server.speech.requests import PronunciationEntry
from server.speech.synthesis import SegmentAudio
from server.speech.timestamps import aligner_language, place_words
from server.text.pronunciations import Pronunciation

log = logging.getLogger("qwen3-tts.jobs")


def segment_options(request: dict[str, Any], segment: SegmentRow) -> SpeechOptions:
    """Segment i of a job is planned as a speech request for its text with seed `seed + i`."""
    return SpeechOptions(
        input=segment.spec.text,
        response_format=request["response_format"],
        speed=request["speed"],
        language=segment.spec.language,
        instructions=segment.spec.instructions,
        seed=segment_seed(request["seed"], segment.index),
        sampling=SamplingParams(
            temperature=request["temperature"],
            top_p=request["top_p"],
            top_k=request["top_k"],
            repetition_penalty=request["repetition_penalty"],
        ),
        max_new_tokens=request["max_new_tokens"],
        sample_rate=SAMPLE_RATE,  # the result is resampled once, from the segments' files
        gain=request["gain"],
        pronunciations=stored_pronunciations(request),
    )


async def segment_words(aligner: AlignerSlot, plan: SpeechPlan, heard: list[SegmentAudio]) -> list[list[Any]]:
    """The words of a job's segment, [word, start, end] in seconds from its start, from the
    aligner slot (as a speech request's are timed). A segment the aligner cannot time gets
    no words (logged): its audio is kept all the same."""
    words: list[list[Any]] = []
    offset = 0.0
    for audio in heard:
        offset += plan.pause_before(audio.index) / SAMPLE_RATE
        text, part = plan.segments[audio.index], plan.part_of(audio.index)
        duration = audio.delivered_samples / SAMPLE_RATE
        try:
            spans = await aligner.align(audio.natural, SAMPLE_RATE, text, aligner_language(part.job.language, text))
        except AlignmentError as exc:
            log.warning("no word timestamps for a job's segment", extra={"error": str(exc)})
            spans = []
        placed = place_words(spans, offset=offset, speed=part.speed, duration=duration)
        words += [[word.word, round(word.start, 3), round(word.end, 3)] for word in placed]
        offset += duration
    return words


def owner_token() -> str:
    """Who holds a lease: this machine, this process, this start of it."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def stored_pronunciations(request: dict[str, Any]) -> tuple[Pronunciation, ...]:
    """A stored job's own pronunciations, read as a speech request's are."""
    entries = [PronunciationEntry.model_validate(entry) for entry in request.get("pronunciations", ())]
    return pronunciations_of(SimpleNamespace(pronunciations=entries))


def dead_here(owner: str) -> bool:
    """Whether a lease's owner was a process of this machine that is gone: not running any
    more, or this very process id (a restart in the same container reuses it)."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def write_segment(path: Path, data: bytes) -> None:
    """The segment's audio, whole on disk before the store says it is done."""
    partial = path.with_suffix(".partial")
    with partial.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)
