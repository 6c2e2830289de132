"""Driving a live server's real engine from a test: occupying its inference thread so queued
work waits however fast the machine is, and waiting for states with a generous deadline
instead of sleeping."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tests.support.live_server import LiveServer

# Generous: a deadline only stops a test that would otherwise hang.
DEADLINE_SECONDS = 120.0


def wait_until(predicate: Callable[[], bool], timeout: float = DEADLINE_SECONDS, interval: float = 0.02) -> None:
    """Return once `predicate()` holds; fail the test when it has not held by the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout:g} s: {predicate}")
        time.sleep(interval)


@contextmanager
def inference_held(server: LiveServer) -> Iterator[None]:
    """Occupy the engine's inference thread for the block: work queues up behind it and no
    frame is generated until the block ends, so deadlines pass without racing the model."""
    running = threading.Event()
    release = threading.Event()

    def hold() -> None:
        running.set()
        release.wait(DEADLINE_SECONDS)

    done = server.engine._worker.call(hold)
    try:
        assert running.wait(DEADLINE_SECONDS), "the inference thread never became free"
        yield
    finally:
        release.set()
        done.result(DEADLINE_SECONDS)
