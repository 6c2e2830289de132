"""The job store on its own: what a restart finds, a damaged database or segment file, the
pages of the listing, the time to live, and the limits checked before a job is accepted."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from server.audio.dsp import SAMPLE_RATE
from server.errors import APIError
from server.jobs.records import SegmentSpec
from server.jobs.results import chapters, encode_result, subtitles, timeline
from server.jobs.runner import JobLimits, JobRunner
from server.jobs.store import DB_NAME, JobStore

SPECS = [
    SegmentSpec("One.", "Ryan", chapter="First", pause_after_ms=500),
    SegmentSpec("Two.", "Vivian", pause_after_ms=1000),
    SegmentSpec("Three.", "Ryan", chapter="Second"),
]


def store_with_job(directory: Path, job_id: str = "job_a", owner: str = "") -> JobStore:
    store = JobStore(directory)
    store.create(job_id, owner, {"seed": 1}, SPECS)
    return store


def finish_segment(store: JobStore, job_id: str, index: int, samples: int) -> None:
    store.segment_path(job_id, index).write_bytes(np.full(samples, 0.25, np.float32).tobytes())
    store.segment_done(job_id, index, samples, len(SPECS[index].text))


def test_the_store_is_created_with_the_first_job_and_what_is_done_survives_reopening(tmp_path: Path) -> None:
    directory = tmp_path / "jobs"
    assert not JobStore(directory).exists() and not directory.exists()  # nothing written before a job
    store = store_with_job(directory)
    finish_segment(store, "job_a", 0, 2400)
    store.close()  # as after a crash: the next process opens the same files

    reopened = JobStore(directory)
    assert reopened.exists()
    job = reopened.get("job_a")
    assert job is not None
    assert (job.status, job.segments_done, job.chars_done, job.samples_done) == ("queued", 1, 4, 2400)
    assert [s.index for s in reopened.pending("job_a", 10)] == [1, 2]
    assert reopened.recheck("job_a") == 0


def test_a_damaged_segment_file_is_generated_again_and_reported(tmp_path: Path) -> None:
    store = store_with_job(tmp_path)
    finish_segment(store, "job_a", 0, 2400)
    finish_segment(store, "job_a", 1, 2400)
    store.segment_path("job_a", 1).write_bytes(b"\0" * 10)  # cut short
    assert store.recheck("job_a") == 1
    assert [s.index for s in store.pending("job_a", 10)] == [1, 2]
    job = store.get("job_a")
    assert job is not None and (job.segments_done, job.samples_done) == (1, 2400)
    assert "damaged" in store.problems[0]


def test_a_damaged_database_is_moved_aside_and_reported_not_fatal(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_bytes(b"this is not a database" * 100)
    store = JobStore(tmp_path)
    store.open()
    assert store.count_active() == 0  # a fresh, working store
    assert any(path.name.startswith(f"{DB_NAME}.damaged-") for path in tmp_path.iterdir())
    assert "damaged" in store.problems[0]
    store.create("job_b", "", {}, SPECS)
    assert store.get("job_b") is not None


def test_pages_are_newest_first_per_owner(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    for n in range(5):
        store.create(f"job_{n}", "mine", {}, SPECS)
    store.create("job_other", "theirs", {}, SPECS)
    first, more = store.page("mine", None, 2)
    assert [j.id for j in first] == ["job_4", "job_3"] and more
    rest, more = store.page("mine", "job_3", 10)
    assert [j.id for j in rest] == ["job_2", "job_1", "job_0"] and not more
    assert [j.id for j in store.page("theirs", None, 10)[0]] == ["job_other"]


def test_finished_jobs_expire_after_their_time_to_live(tmp_path: Path) -> None:
    store = store_with_job(tmp_path)
    store.finish("job_a", "failed", ttl=60, error="boom")
    job = store.get("job_a")
    assert job is not None and job.expires_at is not None
    assert store.expired(time.time()) == []
    assert store.expired(job.expires_at + 1) == ["job_a"]
    store.delete("job_a")
    assert store.get("job_a") is None and not store.job_dir("job_a").exists()
    assert store.segments("job_a") == []  # its segments went with it


def runner(store: JobStore, **limits: Any) -> JobRunner:
    settings = {"concurrency": 1, "ttl": 60.0, "max_disk_bytes": 10**9, "max_queued": 10, "max_input_bytes": 10**6}
    limits = JobLimits(directory=store.directory, **{**settings, **limits})
    return JobRunner(store, cast(Any, None), limits, cast(Any, None))


def test_the_queued_jobs_limit_and_the_disk_quota_are_429s(tmp_path: Path) -> None:
    store = store_with_job(tmp_path)
    with pytest.raises(APIError) as refused:
        runner(store, max_queued=1).check_room()
    assert (refused.value.status, refused.value.code) == (429, "too_many_jobs")
    finish_segment(store, "job_a", 0, 1000)  # 4000 bytes on disk
    with pytest.raises(APIError) as refused:
        runner(store, max_disk_bytes=4000).check_room()
    assert (refused.value.status, refused.value.code) == (429, "disk_quota_exceeded")
    runner(store, max_disk_bytes=4001).check_room()


def test_the_timeline_subtitles_chapters_and_result_agree(tmp_path: Path) -> None:
    store = store_with_job(tmp_path)
    for index, samples in enumerate((2400, 4800, 1200)):
        finish_segment(store, "job_a", index, samples)
    segments = store.segments("job_a")
    placed = timeline(segments)
    assert [(p.start, p.end) for p in placed] == [(0.0, 0.1), (0.6, 0.8), (1.8, 1.85)]
    assert chapters(segments) == [
        {"index": 0, "title": "First", "start": 0.0, "end": 0.8, "first_segment": 0, "last_segment": 1},
        {"index": 1, "title": "Second", "start": 1.8, "end": 1.85, "first_segment": 2, "last_segment": 2},
    ]
    assert "00:00:00,600 --> 00:00:00,800\nTwo." in subtitles(segments, "srt")
    assert subtitles(segments, "vtt").startswith("WEBVTT")

    paths = [store.segment_path("job_a", s.index) for s in segments]
    size = encode_result(segments, paths, "pcm", SAMPLE_RATE, store.result_path("job_a", "pcm"))
    pcm = np.frombuffer(store.result_path("job_a", "pcm").read_bytes(), np.int16)
    assert size == pcm.nbytes and pcm.shape[0] == int(1.85 * SAMPLE_RATE)
    voiced = pcm != 0
    # Speech exactly where the timeline says, silence in the pauses.
    assert voiced[:2400].all() and not voiced[2400:14400].any() and voiced[14400:19200].all()
    wav = encode_result(segments, paths, "wav", SAMPLE_RATE, store.result_path("job_a", "wav"))
    assert wav == size + 44


def test_processes_sharing_a_store_never_take_the_same_segment(tmp_path: Path) -> None:
    """Two processes (Ray replicas on one node) on one store: a claim is one transaction, a
    lease keeps a segment while its owner lives, and a dead owner's leases are freed."""
    first, second = store_with_job(tmp_path), JobStore(tmp_path)
    claims = [first.claim("host:1:a", 30), second.claim("host:2:b", 30), first.claim("host:1:a", 30)]
    assert [(job.id, segment.index) for job, segment in filter(None, claims)] == [
        ("job_a", 0),
        ("job_a", 1),
        ("job_a", 2),
    ]
    assert second.claim("host:2:b", 30) is None  # all leased
    first.release("job_a", 1, "host:1:a")  # not its lease: nothing happens
    assert second.claim("host:2:b", 30) is None
    assert second.release_owners(lambda owner: owner == "host:1:a") == 1
    taken = second.claim("host:2:b", 30)
    assert taken is not None and taken[1].index == 0 and taken[1].attempts == 1  # its second start
    finish_segment(second, "job_a", 0, 100)
    freed = second.claim("host:2:b", 30)
    assert freed is not None and freed[1].index == 2
    assert first.claim("host:1:a", 30) is None  # one done, two leased
    second.release("job_a", 1, "host:2:b")
    again = first.claim("host:1:a", 30)
    assert again is not None and again[1].index == 1
    assert not first.claim_finish("job_a", "host:1:a", 30)  # not every segment is done yet
    for index in (1, 2):
        finish_segment(first, "job_a", index, 100)
    assert first.claim_finish("job_a", "host:1:a", 30)
    assert not second.claim_finish("job_a", "host:2:b", 30)  # one process encodes the result
