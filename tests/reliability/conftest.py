"""A server for the hardening tests: both dev checkpoints, a saved voice library of its own,
the shipped limits on bodies and uploads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.live_server import LiveServer, live_server


@pytest.fixture(scope="package")
def hardened(custom_voice_dir: Path, base_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(
        model_id=str(custom_voice_dir),
        clone_model_id=str(base_dir),
        idle_timeout=0,
        voices_dir=tmp_path_factory.mktemp("hardened-voices"),
        max_new_tokens=48,
    ) as server:
        yield server
