"""The inference thread: one thread that owns the models, fed by a FIFO queue.

Two kinds of work reach it: plain calls (load, unload, clone prompts) and synthesis
segments. Urgent segments (those of interactive jobs) are taken before everything else
that waits, first come first served among themselves; otherwise the queue is FIFO. When a
segment comes up, segments of other requests that are waiting, are as urgent, and can
share one model call are taken with it (up to `max_batch`), keeping the queue's order for
everything else. A batched call costs little more than a single one (the per-step work is
shared), so under concurrency throughput grows with the batch.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

log = logging.getLogger("qwen3-tts.engine")

W = TypeVar("W")  # one batchable work item
R = TypeVar("R")  # its result


@dataclass
class _Call:
    fn: Callable[[], Any]
    future: concurrent.futures.Future[Any] = field(default_factory=concurrent.futures.Future)


@dataclass
class _Item(Generic[W, R]):
    work: W
    future: concurrent.futures.Future[R] = field(default_factory=concurrent.futures.Future)


class InferenceWorker(Generic[W, R]):
    """`run_batch(works)` returns one result or exception per work, in order;
    `compatible(a, b)` says whether two works may share a call; `urgent(work)` whether it
    goes before the works that are not."""

    def __init__(
        self,
        run_batch: Callable[[Sequence[W]], Sequence[R | BaseException]],
        compatible: Callable[[W, W], bool],
        max_batch: int,
        urgent: Callable[[W], bool] = lambda work: False,
    ) -> None:
        self._run_batch = run_batch
        self._compatible = compatible
        self._urgent = urgent
        self.max_batch = max(1, max_batch)
        self._queue: collections.deque[_Call | _Item[W, R]] = collections.deque()
        self._wakeup = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="inference", daemon=True)
        self._thread.start()

    def call(self, fn: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        return self._put(_Call(fn)).future

    def submit(self, work: W) -> concurrent.futures.Future[R]:
        item: _Item[W, R] = self._put(_Item(work))  # type: ignore[assignment]
        return item.future

    def close(self) -> None:
        """Finish what is running, cancel what is queued, stop the thread."""
        with self._wakeup:
            self._closed = True
            while self._queue:
                self._queue.popleft().future.cancel()
            self._wakeup.notify()
        self._thread.join()

    def _put(self, entry: _Call | _Item[W, R]) -> _Call | _Item[W, R]:
        with self._wakeup:
            if self._closed:
                raise RuntimeError("inference worker is closed")
            self._queue.append(entry)
            self._wakeup.notify()
        return entry

    def _next(self) -> _Call | list[_Item[W, R]] | None:
        """Block for the next call, or the next segment with the compatible ones behind it."""
        with self._wakeup:
            while not self._queue and not self._closed:
                self._wakeup.wait()
            if not self._queue:
                return None
            first = next((e for e in self._queue if isinstance(e, _Item) and self._urgent(e.work)), self._queue[0])
            self._queue.remove(first)
            if isinstance(first, _Call):
                return first
            # In a call of whole sentences a batch lasts as long as its longest member, so an
            # urgent segment shares its call only with other urgent ones.
            urgent = self._urgent(first.work)
            batch = [first]
            for entry in list(self._queue):
                if len(batch) >= self.max_batch:
                    break
                if (
                    isinstance(entry, _Item)
                    and self._urgent(entry.work) == urgent
                    and self._compatible(first.work, entry.work)
                ):
                    self._queue.remove(entry)
                    batch.append(entry)
            return batch

    def _loop(self) -> None:
        while (entry := self._next()) is not None:
            if isinstance(entry, _Call):
                self._run_call(entry)
            else:
                self._run_items(entry)

    @staticmethod
    def _run_call(call: _Call) -> None:
        if not call.future.set_running_or_notify_cancel():
            return
        try:
            call.future.set_result(call.fn())
        except BaseException as exc:
            call.future.set_exception(exc)

    def _run_items(self, items: list[_Item[W, R]]) -> None:
        live = [item for item in items if item.future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            results = self._run_batch([item.work for item in live])
        except BaseException as exc:
            results = [exc] * len(live)
        for item, result in zip(live, results, strict=True):
            if isinstance(result, BaseException):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)
