"""Fixtures for the operations tests: one in-process server with metrics and CORS on, and
one real server process taken through a SIGTERM once, whose record the logging and shutdown
tests both read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.live_server import LiveServer, live_server
from tests.support.ops import ALLOWED_ORIGIN, SigtermRun, run_through_sigterm


@pytest.fixture(scope="session")
def ops_server(custom_voice_dir: Path) -> Iterator[LiveServer]:
    with live_server(
        model_id=str(custom_voice_dir),
        idle_timeout=0,
        max_new_tokens=24,
        cors_origins=ALLOWED_ORIGIN,
        metrics_enabled=True,
    ) as running:
        yield running


@pytest.fixture(scope="session")
def sigterm_run(custom_voice_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> SigtermRun:
    return run_through_sigterm(custom_voice_dir, tmp_path_factory.mktemp("sigterm") / "server.log")
