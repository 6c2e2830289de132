"""Session fixtures: dev checkpoints built once, and a shared live server on them; and how
the suite is shared out among pytest-xdist's workers."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from server.devmodel import build_dev_checkpoint
from tests.support.checkpoints import DevBackend, DevCheckpoint
from tests.support.live_server import LiveServer, RecordCollector, dev_settings, live_server
from tests.support.worker_groups import assign_worker_groups


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # One of several workers sharing the machine's cores: a torch thread pool per worker
        # would oversubscribe them. (A live server sets the same when it loads its model.)
        torch.set_num_threads(1)


def pytest_collection_finish(session: pytest.Session) -> None:
    """The heap after collection (torch, transformers, the model package, the server, about
    480,000 objects) lives until the process ends: frozen, the garbage collector stops
    scanning it. Every full collection (each model unload runs one, so every test server's
    stop does) otherwise walks it all: about 0.3 s each on an idle core, 1 s on a busy one."""
    gc.collect()
    gc.freeze()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under `--dist loadgroup` (scripts/test), each test's node id names the worker group it
    belongs to (tests/support/worker_groups.py); a plain run keeps pytest's own ids."""
    if getattr(config.option, "loadgroup", False):  # what xdist sets on each worker under loadgroup
        assign_worker_groups(items, Path(__file__).parent)


@pytest.fixture(scope="session")
def dev_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> DevCheckpoint:
    """Dev checkpoints built once per session, by (kind, size, behaviour, seed): a test that
    needs a steered or another checkpoint asks here instead of building its own copy."""
    built: dict[tuple[str, str, str, int], Path] = {}

    def checkpoint(kind: str = "custom_voice", *, size: str = "tiny", behaviour: str = "stop", seed: int = 0) -> Path:
        key = (kind, size, behaviour, seed)
        if key not in built:
            directory = tmp_path_factory.mktemp("ckpt") / "-".join(map(str, key))
            built[key] = build_dev_checkpoint(directory, kind, size=size, behaviour=behaviour, seed=seed)
        return built[key]

    return checkpoint


@pytest.fixture(scope="session")
def dev_backend(dev_checkpoint: DevCheckpoint) -> Iterator[DevBackend]:
    """CPU backends loaded once per session, by (kind, max_batch, max_length), for the engine
    tests that only run jobs through one: a test that changes a backend's settings, wraps its
    model or counts its loads loads its own, and says why."""
    from server.engine.slots.qwen import LoopLimits, QwenBackend  # the model package: only when asked for

    loaded: dict[tuple[str, int, int], QwenBackend] = {}

    def backend(kind: str = "custom_voice", *, max_batch: int = 8, max_length: int = 512) -> QwenBackend:
        key = (kind, max_batch, max_length)
        if key not in loaded:
            limits = LoopLimits(max_batch=max_batch, max_length=max_length)
            loaded[key] = QwenBackend.load(str(dev_checkpoint(kind)), "cpu", limits=limits)
        return loaded[key]

    yield backend
    for each in loaded.values():
        each.release()


@pytest.fixture(scope="session")
def custom_voice_dir(dev_checkpoint: DevCheckpoint) -> Path:
    return dev_checkpoint("custom_voice")


@pytest.fixture(scope="session")
def base_dir(dev_checkpoint: DevCheckpoint) -> Path:
    return dev_checkpoint("base")


@pytest.fixture(scope="session")
def voice_design_dir(dev_checkpoint: DevCheckpoint) -> Path:
    return dev_checkpoint("voice_design")


@pytest.fixture(scope="session")
def aligner_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Qwen3-ForcedAligner dev checkpoint (word timestamps), seed 0."""
    from server.devmodel.aligner import build_aligner_checkpoint  # imports qwen_asr: only when asked for

    return build_aligner_checkpoint(tmp_path_factory.mktemp("ckpt") / "aligner", "tiny", seed=0)


@pytest.fixture(scope="session")
def server(custom_voice_dir: Path, base_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The shared server most API tests use: both dev checkpoints, no idle unload."""
    with live_server(**dev_settings(custom_voice_dir, base_dir, tmp_path_factory.mktemp("voices"))) as running:
        yield running


@pytest.fixture
def request_log() -> Iterator[RecordCollector]:
    with RecordCollector().attached() as collector:
        yield collector
