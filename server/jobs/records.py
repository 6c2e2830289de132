"""What the job store holds, as the rest of the jobs package reads it: a job's record, its
segments as planned (SegmentSpec) and as they stand (SegmentRow)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SegmentSpec:
    """One segment as a job's input planned it: generated in one go, with its own seed."""

    text: str
    voice: str
    instructions: str | None = None
    language: str | None = None
    chapter: str | None = None  # the title of the chapter this segment starts
    pause_after_ms: int = 0


@dataclass(frozen=True)
class SegmentRow:
    index: int
    spec: SegmentSpec
    done: bool
    samples: int | None  # at 24 kHz, once done
    attempts: int  # how many times its synthesis started
    # Word timestamps ([word, start, end] in seconds from the segment's start) when the job
    # asked for them; None otherwise.
    words: list[list[Any]] | None = None


@dataclass(frozen=True)
class JobRecord:
    id: str
    owner: str
    status: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    expires_at: float | None
    request: dict[str, Any]
    segments_total: int
    chars_total: int
    segments_done: int
    chars_done: int
    samples_done: int
    run_seconds: float
    disk_bytes: int
    result_bytes: int | None
    error: str | None
    error_code: str | None


def job_of(row: sqlite3.Row) -> JobRecord:
    values = dict(row)
    values["request"] = json.loads(values["request"])
    del values["lease_owner"], values["lease_until"]
    return JobRecord(**values)


def segment_of(row: sqlite3.Row) -> SegmentRow:
    spec = SegmentSpec(
        row["text"], row["voice"], row["instructions"], row["language"], row["chapter"], row["pause_after_ms"]
    )
    words = json.loads(row["words"]) if row["words"] else None
    return SegmentRow(row["idx"], spec, bool(row["done"]), row["samples"], row["attempts"], words)
