"""The lock on a shared voice directory: exclusive, released on exit and on cancellation,
and a clear 503 when another holder keeps it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from server.errors import APIError
from server.speech.library_lock import LibraryLock


def test_second_holder_waits_for_the_first(tmp_path: Path) -> None:
    order: list[str] = []

    async def run() -> None:
        lock = LibraryLock(tmp_path)
        first_in = asyncio.Event()
        release_first = asyncio.Event()

        async def first() -> None:
            async with lock.held():
                order.append("first in")
                first_in.set()
                await release_first.wait()
                order.append("first out")

        async def second() -> None:
            await first_in.wait()
            async with LibraryLock(tmp_path).held():  # a separate open file, as another process has
                order.append("second in")

        tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
        await first_in.wait()
        await asyncio.sleep(0.05)  # give the second a chance to (wrongly) get in
        release_first.set()
        await asyncio.gather(*tasks)

    asyncio.run(run())
    assert order == ["first in", "first out", "second in"]


def test_a_lock_kept_too_long_is_a_503_and_a_cancelled_waiter_leaves_it_free(tmp_path: Path) -> None:
    async def run() -> None:
        async with LibraryLock(tmp_path).held():
            with pytest.raises(APIError) as refused:
                async with LibraryLock(tmp_path, timeout=0.05).held():
                    pass
            assert refused.value.status == 503 and refused.value.code == "library_busy"
            waiter = asyncio.create_task(_enter(LibraryLock(tmp_path)))
            await asyncio.sleep(0.02)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
        async with LibraryLock(tmp_path, timeout=1).held():  # nothing is left holding it
            pass

    asyncio.run(run())


async def _enter(lock: LibraryLock) -> None:
    async with lock.held():
        pass
