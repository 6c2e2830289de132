"""Running jobs: up to JOBS_CONCURRENCY workers, each taking the next unfinished segment of
the oldest active job, generating it on the engine at background priority (it only takes a
row no other request is waiting for) and writing its audio to disk before the store marks it
done. Several segments of one job therefore fill free rows of the running batch together.

Each segment is a one-piece synthesis whose seed is the job's seed plus its index (what
segment i of one request gets too), so its audio is the same whenever, alongside whatever
and after however many restarts it is generated. After a crash the store still says which
segments are done; the others are simply taken again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from server.engine.errors import (
    EngineStalledError,
    EngineStoppedError,
    JobTimeoutError,
    ModelLoadError,
    QueueFullError,
)
from server.engine.slots.aligner import AlignerSlot
from server.errors import APIError, to_api_error
from server.jobs.records import JobRecord, SegmentRow
from server.jobs.results import encode_result
from server.jobs.segments import dead_here, owner_token, segment_options, segment_words, write_segment
from server.jobs.store import JobStore
from server.speech.request_log import SpeechStats
from server.speech.synthesis import SegmentAudio, SpeechService
from server.speech.voice_resolution import ResolvedVoice

log = logging.getLogger("qwen3-tts.jobs")

ENDPOINT = "/v1/audio/jobs"
# Errors that say "not now" rather than "never": the segment waits and is tried again; a busy
# queue as often as it takes, a timeout or a failed model load up to MAX_ATTEMPTS times.
BUSY = (QueueFullError, EngineStalledError)
RETRIED = (JobTimeoutError, ModelLoadError)
RETRY_SECONDS = 1.0
MAX_ATTEMPTS = 5
SWEEP_SECONDS = 60.0
# How long a claimed segment stays this process's without a heartbeat (renewed every third
# of it): a process that dies on another machine hands its work over after this long.
LEASE_SECONDS = 30.0
IDLE_POLL_SECONDS = 2.0
# While other requests run, and for YIELD_SECONDS after, jobs start new segments only up to
# this share of JOBS_CONCURRENCY (at least one), checked every YIELD_POLL_SECONDS.
YIELD_SHARE = 0.25
YIELD_SECONDS = 2.0
YIELD_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class JobLimits:
    directory: Path
    concurrency: int
    ttl: float
    max_disk_bytes: int
    max_queued: int
    max_input_bytes: int


VoiceResolver = Callable[[dict[str, Any], str], Awaitable[tuple[ResolvedVoice, Any]]]


class JobRunner:
    """The jobs of one server: the store, the workers, and who is told of progress."""

    def __init__(
        self,
        store: JobStore,
        speech: SpeechService,
        limits: JobLimits,
        resolve: VoiceResolver,
        aligner: AlignerSlot | None = None,
    ) -> None:
        self.store = store
        self.aligner = aligner  # word timestamps, for the jobs that ask (None: ALIGNER_MODEL_ID unset)
        self.speech = speech
        self.limits = limits
        self._resolve = resolve
        self._voices: dict[tuple[str, str], tuple[ResolvedVoice, Any]] = {}
        self._running: dict[str, dict[int, asyncio.Task[None]]] = {}
        self._finishing: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._changed = asyncio.Event()
        # Per job in this process: (when it was first seen running, characters done then),
        # for the estimate of the time left.
        self._pace: dict[str, tuple[float, int]] = {}
        self._foreground_at = -YIELD_SECONDS  # when other requests were last seen running
        # Who holds a lease: this machine, this process, this start of it.
        self.token = owner_token()

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Resume what a previous run left: active jobs are re-checked (a segment whose file is
        gone is generated again) and picked up; a store that does not exist yet is created
        with the first job."""
        if self.store.exists():
            self.store.open()
            freed = self.store.release_owners(dead_here)
            if freed:
                log.info("took over the work of stopped processes", extra={"processes": freed})
            for job in self.store.active():
                self.store.recheck(job.id)
        self.sweep()
        for n in range(self.limits.concurrency):
            self._tasks.append(asyncio.create_task(self._work(), name=f"job-worker-{n}"))
        self._tasks.append(asyncio.create_task(self._sweeper(), name="job-sweeper"))
        self._tasks.append(asyncio.create_task(self._heartbeat(), name="job-heartbeat"))

    async def stop(self) -> None:
        """Stop taking segments; the ones in flight are dropped (not marked done), so the
        next run generates them again."""
        segments = [task for running in self._running.values() for task in running.values()]
        for task in [*self._tasks, *segments]:
            task.cancel()
        for task in [*self._tasks, *segments]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.store.exists():
            # Handed back at once: another process sharing the store takes them now.
            self.store.release_owners(lambda owner: owner == self.token)
        self.store.close()

    def notify(self) -> None:
        """Wake the workers and every progress watcher."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self, within: float) -> None:
        """Return after the next change (or `within` seconds)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), within)

    # ---- the API's side --------------------------------------------------------------

    def check_room(self) -> None:
        """The queued-jobs limit and the disk quota, each a 429 the client can wait out."""
        if self.store.count_active() >= self.limits.max_queued:
            raise APIError(
                429,
                f"{self.limits.max_queued} jobs are queued or running (JOBS_MAX_QUEUED); try again when one is done",
                "invalid_request_error",
                None,
                "too_many_jobs",
            )
        if self.store.disk_used() >= self.limits.max_disk_bytes:
            raise APIError(
                429,
                f"the jobs' files take {self.limits.max_disk_bytes} bytes or more (JOBS_MAX_DISK_BYTES); "
                "delete finished jobs or wait for them to expire",
                "invalid_request_error",
                None,
                "disk_quota_exceeded",
            )

    def submit(self, owner: str, request: dict[str, Any], segments: list[Any]) -> JobRecord:
        job_id = f"job_{secrets.token_hex(12)}"
        self.store.create(job_id, owner, request, segments)
        self.notify()
        record = self.store.get(job_id)
        assert record is not None
        return record

    def find(self, job_id: str, owner: str) -> JobRecord | None:
        job = self.store.get(job_id) if self.store.exists() else None
        return job if job is not None and job.owner == owner else None

    async def delete(self, job: JobRecord) -> None:
        """Cancel a job's segments in flight, then remove it and its files."""
        for task in list(self._running.get(job.id, {}).values()):
            task.cancel()
        for task in list(self._running.get(job.id, {}).values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # The record here (the connection is the event loop's), the files on a thread: a
        # book's folder holds thousands of them.
        self.store.delete(job.id, files=False)
        await asyncio.to_thread(shutil.rmtree, self.store.job_dir(job.id), True)
        self._forget(job.id)
        self.notify()

    def seconds_left(self, job: JobRecord) -> float | None:
        """The time left at the pace this process has kept on the job so far."""
        pace = self._pace.get(job.id)
        if job.status != "running" or pace is None:
            return None
        since, chars_then = pace
        done = job.chars_done - chars_then
        if done <= 0:
            return None
        return (time.monotonic() - since) / done * (job.chars_total - job.chars_done)

    def describe(self) -> dict[str, Any]:
        """The jobs section of /health."""
        opened = self.store.exists()
        return {
            "directory": str(self.limits.directory),
            "concurrency": self.limits.concurrency,
            "active_jobs": self.store.count_active() if opened else 0,
            "disk_bytes": self.store.disk_used() if opened else 0,
            "segments_running": sum(len(r) for r in self._running.values()),
            "problems": list(self.store.problems),
        }

    def sweep(self) -> None:
        """Remove the jobs whose time to live has passed."""
        if not self.store.exists():
            return
        for job_id in self.store.expired(time.time()):
            log.info("job expired", extra={"job_id": job_id})
            self.store.delete(job_id)

    # ---- the workers -----------------------------------------------------------------

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(min(SWEEP_SECONDS, max(self.limits.ttl / 2, 1.0)))
            self.sweep()

    def _claim(self) -> tuple[JobRecord, SegmentRow] | None:
        if not self.store.exists():
            return None
        return self.store.claim(self.token, LEASE_SECONDS)

    async def _heartbeat(self) -> None:
        """Keep this process's leases while it works on them."""
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            if self.store.exists():
                self.store.renew(self.token, LEASE_SECONDS)

    def _in_flight(self) -> int:
        return sum(len(running) for running in self._running.values())

    def _yielding(self) -> bool:
        """Whether other requests are running (or ran within YIELD_SECONDS): then the jobs
        take at most YIELD_SHARE of their rows. Every batch row costs frame time on a
        compute-bound device, so fewer job rows make a request's frames, its first audio
        first of all, faster."""
        now = time.monotonic()
        if self.speech.engine.depth > self._in_flight():
            self._foreground_at = now
        return now - self._foreground_at < YIELD_SECONDS

    async def _work(self) -> None:
        while True:
            changed = self._changed
            if self._yielding() and self._in_flight() >= max(1, int(self.limits.concurrency * YIELD_SHARE)):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), YIELD_POLL_SECONDS)
                continue
            claim = self._claim()
            if claim is None:
                await self._finish_ready()
                # Woken by this process's news, or polling for another's (replicas that
                # share the store) and for leases that ran out.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), IDLE_POLL_SECONDS)
                continue
            job, segment = claim
            task = asyncio.create_task(self._segment(job, segment), name=f"{job.id}-{segment.index}")
            self._running.setdefault(job.id, {})[segment.index] = task
            try:
                await asyncio.wait([task])
            finally:
                self._running.get(job.id, {}).pop(segment.index, None)
            error = None if task.cancelled() else task.exception()
            if task.cancelled() or error is not None:
                self.store.release(job.id, segment.index, self.token)
            if task.cancelled():
                continue
            if isinstance(error, EngineStoppedError):
                return  # shutting down: the segment stays to do
            if isinstance(error, BUSY) or (isinstance(error, RETRIED) and segment.attempts < MAX_ATTEMPTS):
                await asyncio.sleep(RETRY_SECONDS)  # the engine is busy or loading: try again shortly
            elif error is not None:
                self._fail(job, error)
            await self._maybe_finish(job.id)
            self.notify()

    async def _finish_ready(self) -> None:
        """Encode the jobs whose segments are all done but whose result is not (a process
        stopped while encoding it)."""
        if not self.store.exists():
            return
        for job in self.store.active():
            if job.segments_done == job.segments_total:
                await self._maybe_finish(job.id)

    async def _segment(self, job: JobRecord, segment: SegmentRow) -> None:
        self.store.mark_running(job.id)
        self._pace.setdefault(job.id, (time.monotonic(), job.chars_done))
        request = job.request
        voice, fmt = await self._voice(job, segment.spec.voice)
        options = segment_options(request, segment)
        plan = self.speech.plan(options, voice, fmt, ENDPOINT)
        # The speech endpoint's chunk plan is kept (larger chunks would decode the codec in
        # other pieces and change the samples): segment i sounds exactly like a speech request
        # for its text with seed `job seed + i`.
        # A segment with pause tags or SSML plans as several parts: every one runs in the background.
        rest = tuple(replace(part, job=replace(part.job, background=True)) for part in plan.rest)
        plan = replace(plan, job=replace(plan.job, background=True), rest=rest)
        heard: list[SegmentAudio] = []
        timed = request.get("timestamps") and self.aligner is not None
        pcm = await self.speech.collect(plan, SpeechStats(), heard.append if timed else None)
        words = await segment_words(self.aligner, plan, heard) if timed and self.aligner is not None else None
        path = self.store.segment_path(job.id, segment.index)
        await asyncio.to_thread(write_segment, path, pcm.tobytes())
        self.store.segment_done(job.id, segment.index, int(pcm.shape[0]), len(segment.spec.text), words)

    async def _voice(self, job: JobRecord, name: str) -> tuple[ResolvedVoice, Any]:
        key = (job.id, name)
        if key not in self._voices:
            self._voices[key] = await self._resolve(job.request, name)
        return self._voices[key]

    def _fail(self, job: JobRecord, error: BaseException) -> None:
        api_error = to_api_error(error)
        log.warning("job failed", extra={"job_id": job.id, "error": str(error)})
        current = self.store.get(job.id)
        if current is not None and current.status in ("queued", "running"):
            self.store.finish(job.id, "failed", self.limits.ttl, error=api_error.message, error_code=api_error.code)
        self._cancel_rest(job.id)
        self._forget(job.id)

    def _cancel_rest(self, job_id: str) -> None:
        current = asyncio.current_task()
        for task in list(self._running.get(job_id, {}).values()):
            if task is not current:
                task.cancel()

    async def _maybe_finish(self, job_id: str) -> None:
        """Encode the result once every segment is done (one worker does it)."""
        job = self.store.get(job_id)
        if job is None or job.status not in ("queued", "running") or job.segments_done < job.segments_total:
            return
        if job_id in self._finishing or not self.store.claim_finish(job_id, self.token, LEASE_SECONDS):
            return  # another worker (or another process sharing the store) encodes it
        self._finishing.add(job_id)
        try:
            segments = self.store.segments(job_id)
            paths = [self.store.segment_path(job_id, s.index) for s in segments]
            target = self.store.result_path(job_id, job.request["extension"])
            fmt, rate = job.request["response_format"], job.request["sample_rate"]
            size = await asyncio.to_thread(encode_result, segments, paths, fmt, rate, target)
            self.store.finish(job_id, "succeeded", self.limits.ttl, result_bytes=size)
            log.info("job finished", extra={"job_id": job_id, "segments": job.segments_total, "bytes": size})
        except Exception as exc:
            log.exception("job result could not be encoded", extra={"job_id": job_id})
            self.store.finish(job_id, "failed", self.limits.ttl, error=f"encoding the result failed: {exc}")
        finally:
            self._finishing.discard(job_id)
            self._forget(job_id)

    def _forget(self, job_id: str) -> None:
        self._pace.pop(job_id, None)
        for key in [k for k in self._voices if k[0] == job_id]:
            del self._voices[key]
