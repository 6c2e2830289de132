"""The inference worker's queue order: segments of interactive jobs go first, FIFO among
equals, and share a call only with each other. These drive the worker's queue with plain
work items (the queue logic alone; the model is exercised by the live-server tests)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from server.engine.worker import InferenceWorker


@dataclass(frozen=True)
class Work:
    name: str
    urgent: bool = False


class Recorder:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.running = threading.Event()
        self.release = threading.Event()

    def run(self, works: Sequence[Work]) -> list[str]:
        if works[0].name == "blocker":
            self.running.set()
            assert self.release.wait(30)
        self.calls.append([w.name for w in works])
        return [w.name for w in works]


def drive(queued: list[Work], max_batch: int, calls_before: int = 0) -> list[list[str]]:
    """Hold the thread on a blocker, queue `queued` behind it, then let everything run."""
    recorder = Recorder()
    worker: InferenceWorker[Work, str] = InferenceWorker(
        recorder.run, lambda a, b: True, max_batch, urgent=lambda w: w.urgent
    )
    try:
        blocker = worker.submit(Work("blocker"))
        assert recorder.running.wait(30)
        plain_calls = [worker.call(lambda i=i: recorder.calls.append([f"call-{i}"])) for i in range(calls_before)]
        futures = [worker.submit(work) for work in queued]
        recorder.release.set()
        for future in [blocker, *plain_calls, *futures]:
            future.result(timeout=30)
    finally:
        worker.close()
    return recorder.calls


def test_urgent_segments_go_first_in_arrival_order() -> None:
    queued = [Work("bulk-1"), Work("bulk-2"), Work("live-1", True), Work("bulk-3"), Work("live-2", True)]
    assert drive(queued, max_batch=1) == [["blocker"], ["live-1"], ["live-2"], ["bulk-1"], ["bulk-2"], ["bulk-3"]]


def test_urgent_segments_overtake_waiting_plain_calls_too() -> None:
    calls = drive([Work("bulk-1"), Work("live-1", True)], max_batch=1, calls_before=1)
    assert calls == [["blocker"], ["live-1"], ["call-0"], ["bulk-1"]]


def test_urgent_and_bulk_segments_do_not_share_a_call() -> None:
    queued = [Work("bulk-1"), Work("live-1", True), Work("bulk-2"), Work("live-2", True), Work("bulk-3")]
    assert drive(queued, max_batch=4) == [["blocker"], ["live-1", "live-2"], ["bulk-1", "bulk-2", "bulk-3"]]


def test_without_urgent_work_the_queue_stays_fifo() -> None:
    queued = [Work(f"bulk-{i}") for i in range(4)]
    assert drive(queued, max_batch=1) == [["blocker"], *[[f"bulk-{i}"] for i in range(4)]]
