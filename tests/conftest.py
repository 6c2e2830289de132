"""Session fixtures: dev checkpoints built once, and a shared live server on them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from server.devmodel import build_dev_checkpoint
from tests.support.live_server import LiveServer, RecordCollector, dev_settings, live_server


@pytest.fixture(scope="session")
def custom_voice_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_dev_checkpoint(tmp_path_factory.mktemp("ckpt") / "custom_voice", "custom_voice", seed=0)


@pytest.fixture(scope="session")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_dev_checkpoint(tmp_path_factory.mktemp("ckpt") / "base", "base", seed=0)


@pytest.fixture(scope="session")
def voice_design_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_dev_checkpoint(tmp_path_factory.mktemp("ckpt") / "voice_design", "voice_design", seed=0)


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
