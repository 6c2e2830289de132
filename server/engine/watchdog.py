"""The stall watchdog: notices an inference thread that holds work and makes no progress
(a hung GPU kernel, a deadlock in a native library), which would otherwise leave /health
saying ok while every request waits until its timeout.

The inference thread marks when it starts each unit of work (a queued call, one slot's tick)
and clears the mark when the unit ends (`InferenceLoop.unit_started`). A unit lasts
milliseconds to a few seconds; one that has lasted ENGINE_STALL_TIMEOUT is a stall. A model
load is one long unit that is legitimate: time spent while a slot is loading is not counted
(a load that fails has its own error path). On a stall the engine reports it (/health 503 with
the reason, new work refused with 503); if the thread recovers, so does the engine; if it is
still stuck ENGINE_STALL_GRACE seconds later, `on_exit` runs: the single server exits with
EXIT_STALLED so that its supervisor (Docker's restart policy, Kubernetes) starts a fresh one. A
Ray replica passes no `on_exit`: it reports itself unhealthy and Serve replaces it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Protocol

log = logging.getLogger("qwen3-tts.engine")

EXIT_STALLED = 70  # EX_SOFTWARE: an internal error the process cannot recover from


class Busy(Protocol):
    @property
    def unit_started(self) -> float | None: ...


class Loading(Protocol):
    @property
    def state(self) -> str: ...


def exit_process() -> None:
    """End the process at once: the stuck thread cannot be joined, so no clean shutdown."""
    logging.shutdown()
    sys.stderr.flush()
    os._exit(EXIT_STALLED)


class StallWatchdog:
    def __init__(
        self,
        thread: Busy,
        slots: Iterable[Loading],
        timeout: float,
        grace: float,
        on_exit: Callable[[], None] | None,
    ) -> None:
        self.thread = thread
        self.slots = list(slots)
        self.timeout = timeout
        self.grace = grace
        self.on_exit = on_exit
        self.stalled: str | None = None  # why the engine is stalled, while it is
        self.checks = 0  # passes made, so observers can wait for some to happen
        self._excused_at = 0.0  # the last time a model was seen loading
        self._stalled_at = 0.0

    @property
    def period(self) -> float:
        return max(0.02, min(1.0, self.timeout / 4, self.grace / 4 if self.grace > 0 else 1.0))

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            self.check()

    def check(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.checks += 1
        if any(slot.state == "loading" for slot in self.slots):
            self._excused_at = now
        started = self.thread.unit_started
        busy_for = 0.0 if started is None else now - max(started, self._excused_at)
        if busy_for < self.timeout:
            if self.stalled is not None:
                log.warning("inference thread recovered", extra={"stalled_for_s": round(now - self._stalled_at, 1)})
                self.stalled = None
            return
        if self.stalled is None:
            self.stalled = f"the inference thread has made no progress for {busy_for:.0f} s (ENGINE_STALL_TIMEOUT)"
            self._stalled_at = now
            log.error(
                "engine stalled", extra={"reason": self.stalled, "exit_in_s": self.grace if self.on_exit else None}
            )
            return
        if self.on_exit is not None and now - self._stalled_at >= self.grace:
            log.critical(
                "engine stalled: exiting so that the process is restarted", extra={"exit_status": EXIT_STALLED}
            )
            self.on_exit()
