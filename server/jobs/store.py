"""The job store: SQLite from the standard library, in WAL mode, in JOBS_DIR (`jobs.db`), and
each job's files in a folder of its own (`<id>/seg-000001.f32`, `<id>/result.mp3`).

Why SQLite in WAL mode: a committed transaction survives the process being killed (the WAL
is on disk before the commit returns; `synchronous=NORMAL` only risks the last commits on a
power loss), readers never block the one writer, and it needs no server. Every write here is
one short transaction on the event loop's thread, far below a frame's time.

A segment counts as done only once its audio file is on disk (written aside, then renamed)
and its row says so: a crash between the two leaves a file without the row, which the next
run overwrites. A row whose file is missing or of the wrong size is generated again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from server.jobs.records import JobRecord, SegmentRow, SegmentSpec, job_of, segment_of

log = logging.getLogger("qwen3-tts.jobs")

DB_NAME = "jobs.db"
SAMPLE_BYTES = 4  # float32

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    expires_at REAL,
    request TEXT NOT NULL,
    segments_total INTEGER NOT NULL,
    chars_total INTEGER NOT NULL,
    segments_done INTEGER NOT NULL DEFAULT 0,
    chars_done INTEGER NOT NULL DEFAULT 0,
    samples_done INTEGER NOT NULL DEFAULT 0,
    run_seconds REAL NOT NULL DEFAULT 0,
    disk_bytes INTEGER NOT NULL DEFAULT 0,
    result_bytes INTEGER,
    error TEXT,
    error_code TEXT,
    lease_owner TEXT,
    lease_until REAL
);
CREATE TABLE IF NOT EXISTS segments (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    text TEXT NOT NULL,
    voice TEXT NOT NULL,
    instructions TEXT,
    language TEXT,
    chapter TEXT,
    pause_after_ms INTEGER NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    samples INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until REAL,
    words TEXT,
    PRIMARY KEY (job_id, idx)
);
CREATE INDEX IF NOT EXISTS segments_to_do ON segments (job_id, idx) WHERE done = 0;
"""

ACTIVE = ("queued", "running")
FINAL = ("succeeded", "failed", "cancelled")


# Columns added after the first schema: a store written by an earlier version gets them.
LATER_COLUMNS = {
    "jobs": ("lease_owner TEXT", "lease_until REAL"),
    "segments": ("lease_owner TEXT", "lease_until REAL", "words TEXT"),
}


def _add_missing_columns(db: sqlite3.Connection) -> None:
    for table, columns in LATER_COLUMNS.items():
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        for column in columns:
            if column.split()[0] not in present:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")


class StoreDamaged(Exception):
    """The database could not be opened or failed its integrity check."""


class JobStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._db: sqlite3.Connection | None = None
        self.problems: list[str] = []

    # ---- opening ---------------------------------------------------------------------

    def exists(self) -> bool:
        return (self.directory / DB_NAME).exists()

    @property
    def db(self) -> sqlite3.Connection:
        """The connection, opened (and the folder created) on first use: a server that never
        takes a job leaves no files behind."""
        if self._db is None:
            self.open()
        assert self._db is not None
        return self._db

    def open(self) -> None:
        """Open the database; a damaged one is moved aside (and reported) and a new one started,
        so a bad file never stops the server."""
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._connect()
        except (sqlite3.DatabaseError, StoreDamaged) as exc:
            aside = self.directory / f"{DB_NAME}.damaged-{int(time.time())}"
            for suffix in ("", "-wal", "-shm"):
                source = self.directory / f"{DB_NAME}{suffix}"
                if source.exists():
                    os.replace(source, f"{aside}{suffix}")
            problem = f"the job store was damaged ({exc}); it was moved to {aside.name} and a new one started"
            log.error(problem)
            self.problems.append(problem)
            self._db = self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.directory / DB_NAME, isolation_level=None, check_same_thread=False)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            # Several processes (Ray replicas on one node) may share the store: a writer
            # waits for another's transaction instead of failing.
            db.execute("PRAGMA busy_timeout=10000")
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                raise StoreDamaged(verdict)
            db.executescript(SCHEMA)
            _add_missing_columns(db)
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # ---- files -----------------------------------------------------------------------

    def job_dir(self, job_id: str) -> Path:
        return self.directory / job_id

    def segment_path(self, job_id: str, index: int) -> Path:
        return self.job_dir(job_id) / f"seg-{index:06d}.f32"

    def result_path(self, job_id: str, extension: str) -> Path:
        return self.job_dir(job_id) / f"result.{extension}"

    # ---- jobs ------------------------------------------------------------------------

    def create(self, job_id: str, owner: str, request: dict[str, Any], segments: Sequence[SegmentSpec]) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO jobs (id, owner, status, created_at, request, segments_total, chars_total)"
                " VALUES (?, ?, 'queued', ?, ?, ?, ?)",
                (job_id, owner, time.time(), json.dumps(request), len(segments), sum(len(s.text) for s in segments)),
            )
            db.executemany(
                "INSERT INTO segments (job_id, idx, text, voice, instructions, language, chapter, pause_after_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (job_id, i, s.text, s.voice, s.instructions, s.language, s.chapter, s.pause_after_ms)
                    for i, s in enumerate(segments)
                ],
            )
        self.job_dir(job_id).mkdir(parents=True, exist_ok=True)

    def get(self, job_id: str) -> JobRecord | None:
        row = self.db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return job_of(row) if row is not None else None

    def page(self, owner: str | None, after: str | None, limit: int) -> tuple[list[JobRecord], bool]:
        """Newest first; `after` is the id of the last job of the previous page. `owner` None
        lists every job (no API keys)."""
        where, args = [], []
        if owner is not None:
            where.append("owner = ?")
            args.append(owner)
        if after is not None:
            where.append("rowid < (SELECT rowid FROM jobs WHERE id = ?)")
            args.append(after)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self.db.execute(
            f"SELECT * FROM jobs {clause} ORDER BY rowid DESC LIMIT ?",
            (*args, limit + 1),
        ).fetchall()
        return [job_of(r) for r in rows[:limit]], len(rows) > limit

    def active(self) -> list[JobRecord]:
        """Queued and running jobs, oldest first: the order they run in."""
        rows = self.db.execute("SELECT * FROM jobs WHERE status IN ('queued', 'running') ORDER BY rowid").fetchall()
        return [job_of(r) for r in rows]

    def count_active(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')").fetchone()[0])

    def disk_used(self) -> int:
        return int(self.db.execute("SELECT coalesce(sum(disk_bytes), 0) FROM jobs").fetchone()[0])

    def mark_running(self, job_id: str) -> None:
        self.db.execute(
            "UPDATE jobs SET status = 'running', started_at = coalesce(started_at, ?)"
            " WHERE id = ? AND status = 'queued'",
            (time.time(), job_id),
        )

    def add_run_time(self, job_id: str, seconds: float) -> None:
        self.db.execute("UPDATE jobs SET run_seconds = run_seconds + ? WHERE id = ?", (seconds, job_id))

    def finish(
        self,
        job_id: str,
        status: str,
        ttl: float,
        *,
        result_bytes: int | None = None,
        error: str | None = None,
        error_code: str | None = None,
    ) -> None:
        now = time.time()
        self.db.execute(
            "UPDATE jobs SET status = ?, finished_at = ?, expires_at = ?, result_bytes = ?, error = ?,"
            " error_code = ?, disk_bytes = disk_bytes + ? WHERE id = ?",
            (status, now, now + ttl, result_bytes, error, error_code, result_bytes or 0, job_id),
        )

    def delete(self, job_id: str, *, files: bool = True) -> None:
        """Remove the job (its segments with it) and, unless told otherwise, its folder."""
        self.db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        if files:
            shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def expired(self, now: float) -> list[str]:
        rows = self.db.execute("SELECT id FROM jobs WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,))
        return [row[0] for row in rows.fetchall()]

    # ---- segments --------------------------------------------------------------------

    def segments(self, job_id: str) -> list[SegmentRow]:
        rows = self.db.execute("SELECT * FROM segments WHERE job_id = ? ORDER BY idx", (job_id,)).fetchall()
        return [segment_of(r) for r in rows]

    def pending(self, job_id: str, limit: int) -> list[SegmentRow]:
        """The first `limit` segments not done."""
        rows = self.db.execute(
            "SELECT * FROM segments WHERE job_id = ? AND done = 0 ORDER BY idx LIMIT ?", (job_id, limit)
        ).fetchall()
        return [segment_of(r) for r in rows]

    # ---- leases: which process generates what ---------------------------------------

    def claim(self, owner: str, lease: float) -> tuple[JobRecord, SegmentRow] | None:
        """Take the first segment not done and not leased (of the oldest active job) for
        `lease` seconds. One transaction, so two processes sharing the store never take the
        same segment; a process that dies leaves leases that run out and are taken again."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute(
                "SELECT s.* FROM jobs j JOIN segments s ON s.job_id = j.id"
                " WHERE j.status IN ('queued', 'running') AND s.done = 0"
                " AND (s.lease_until IS NULL OR s.lease_until < ?) ORDER BY j.rowid, s.idx LIMIT 1",
                (now,),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE segments SET lease_owner = ?, lease_until = ?, attempts = attempts + 1"
                " WHERE job_id = ? AND idx = ?",
                (owner, now + lease, row["job_id"], row["idx"]),
            )
            job = db.execute("SELECT * FROM jobs WHERE id = ?", (row["job_id"],)).fetchone()
        return job_of(job), segment_of(row)

    def claim_finish(self, job_id: str, owner: str, lease: float) -> bool:
        """Take the encoding of a job whose segments are all done (one process does it)."""
        now = time.time()
        return (
            self.db.execute(
                "UPDATE jobs SET lease_owner = ?, lease_until = ? WHERE id = ? AND status IN ('queued', 'running')"
                " AND segments_done = segments_total AND (lease_until IS NULL OR lease_until < ?)",
                (owner, now + lease, job_id, now),
            ).rowcount
            == 1
        )

    def release(self, job_id: str, index: int, owner: str) -> None:
        """Give a segment back (its generation failed for now, or was stopped)."""
        self.db.execute(
            "UPDATE segments SET lease_until = NULL WHERE job_id = ? AND idx = ? AND lease_owner = ?",
            (job_id, index, owner),
        )

    def renew(self, owner: str, lease: float) -> None:
        """Extend every lease `owner` holds (its heartbeat)."""
        until = time.time() + lease
        with self._transaction() as db:
            db.execute("UPDATE segments SET lease_until = ? WHERE lease_owner = ? AND done = 0", (until, owner))
            db.execute("UPDATE jobs SET lease_until = ? WHERE lease_owner = ? AND status = 'running'", (until, owner))

    def release_owners(self, dead: Callable[[str], bool]) -> int:
        """Free at once the leases of owners `dead` says are gone (a process of this machine
        that no longer runs), rather than waiting for them to run out; returns how many."""
        rows = self.db.execute(
            "SELECT DISTINCT lease_owner FROM segments WHERE lease_owner IS NOT NULL AND lease_until IS NOT NULL"
            " UNION SELECT DISTINCT lease_owner FROM jobs WHERE lease_owner IS NOT NULL AND lease_until IS NOT NULL"
        ).fetchall()
        gone = [row[0] for row in rows if dead(row[0])]
        with self._transaction() as db:
            for owner in gone:
                db.execute("UPDATE segments SET lease_until = NULL WHERE lease_owner = ?", (owner,))
                db.execute("UPDATE jobs SET lease_until = NULL WHERE lease_owner = ?", (owner,))
        return len(gone)

    def segment_done(
        self, job_id: str, index: int, samples: int, chars: int, words: list[list[Any]] | None = None
    ) -> None:
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE segments SET done = 1, samples = ?, words = ? WHERE job_id = ? AND idx = ? AND done = 0",
                (samples, json.dumps(words) if words is not None else None, job_id, index),
            ).rowcount
            if changed:
                db.execute(
                    "UPDATE jobs SET segments_done = segments_done + 1, chars_done = chars_done + ?,"
                    " samples_done = samples_done + ?, disk_bytes = disk_bytes + ? WHERE id = ?",
                    (chars, samples, samples * SAMPLE_BYTES, job_id),
                )

    def recheck(self, job_id: str) -> int:
        """Segments marked done whose audio file is missing or of the wrong size are marked
        to do again (a damaged file is reported, then regenerated); returns how many."""
        redo = []
        for segment in self.segments(job_id):
            if not segment.done:
                continue
            path = self.segment_path(job_id, segment.index)
            expected = (segment.samples or 0) * SAMPLE_BYTES
            if not path.exists() or path.stat().st_size != expected:
                redo.append(segment)
        if redo:
            problem = f"job {job_id}: {len(redo)} segment file(s) missing or damaged; they are generated again"
            log.warning(problem)
            self.problems.append(problem)
            with self._transaction() as db:
                for segment in redo:
                    samples = segment.samples or 0
                    db.execute(
                        "UPDATE segments SET done = 0, samples = NULL WHERE job_id = ? AND idx = ?",
                        (job_id, segment.index),
                    )
                    db.execute(
                        "UPDATE jobs SET segments_done = segments_done - 1, chars_done = chars_done - ?,"
                        " samples_done = samples_done - ?, disk_bytes = disk_bytes - ? WHERE id = ?",
                        (len(segment.spec.text), samples, samples * SAMPLE_BYTES, job_id),
                    )
        return len(redo)
