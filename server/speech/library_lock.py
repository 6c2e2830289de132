"""An exclusive lock on VOICES_DIR shared by every process that serves the same library
(the replicas of a cluster on one volume, NFS export or Kubernetes volume).

A saved voice becomes visible to every process when its metadata file is renamed into
place; the lock makes "is this name free?" and that rename one step, so two replicas
saving the same name at once give one voice and one 409, never two voices of one name.

`fcntl.flock` on `<VOICES_DIR>/.lock`: the kernel drops the lock when the holder's file is
closed or its process dies, so a crashed replica never leaves the library locked. On NFS,
Linux clients carry flock as a POSIX lock to the server (NFSv4, or NFSv3 with the lock
daemon); a filesystem without shared locks (some FUSE mounts of object stores) gives each
host its own lock, and then only same-host saves are serialised.

The lock is taken without blocking and retried from the event loop, so a waiting request
holds no thread and a cancelled one leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from server.errors import APIError

LOCK_FILE = ".lock"
RETRY_SECONDS = 0.005


class LibraryLock:
    def __init__(self, root: Path, timeout: float = 10.0) -> None:
        self.path = root / LOCK_FILE
        self.timeout = timeout

    @asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """Hold the lock for the block; 503 when another process keeps it past `timeout`
        (held for milliseconds normally, so that means a stuck filesystem)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + self.timeout
            while not _try_lock(fd):
                if time.monotonic() > deadline:
                    raise APIError(
                        503,
                        "the voice library is locked by another process; try again",
                        "server_error",
                        code="library_busy",
                        headers={"Retry-After": "1"},
                    )
                await asyncio.sleep(RETRY_SECONDS)
            yield
        finally:
            os.close(fd)  # releases the lock


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
