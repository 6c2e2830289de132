"""Driving a live server's real engine from a test: occupying its inference thread so queued
work waits however fast the machine is, running coroutines on the server's event loop, and
waiting for states with a generous deadline instead of sleeping."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from tests.support.live_server import LiveServer

T = TypeVar("T")

# Generous: a deadline only stops a test that would otherwise hang; on a busy machine a
# state may take many times longer than usual to arrive.
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
    """Occupy the engine's inference thread for the block: jobs are admitted and queue up, but
    no frame is generated until the block ends, so queue and deadline behaviour can be observed
    without racing the model."""
    running = threading.Event()
    release = threading.Event()

    def hold() -> None:
        running.set()
        release.wait(DEADLINE_SECONDS)

    done = server.engine.call_on_thread(hold)
    try:
        assert running.wait(DEADLINE_SECONDS), "the inference thread never became free"
        yield
    finally:
        release.set()
        done.result(DEADLINE_SECONDS)


def on_server_loop(server: LiveServer, coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on the live server's event loop (where the engine lives) and return its result."""
    loop = server.engine.loop
    assert loop is not None, "the engine has not started"
    return asyncio.run_coroutine_threadsafe(coro, loop).result(DEADLINE_SECONDS)


def idle_sweep_after_now(server: LiveServer) -> None:
    """Wait until the idle unloader has run one whole pass that began after this call."""
    seen = server.engine.idle_sweeps
    wait_until(lambda: server.engine.idle_sweeps >= seen + 2)
