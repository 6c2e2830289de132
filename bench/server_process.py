"""A server in its own process for benchmarks: the load generator's threads then do not share
an interpreter (and its lock) with the server they measure."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.support.live_server import free_port


@contextmanager
def direct_server(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "server"]
    process = subprocess.Popen(command, env={**os.environ, **env, "HOST": "127.0.0.1", "PORT": str(port)})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)


def wait_ready(url: str, timeout: float = 300.0) -> None:
    """Until /health answers and the preloaded model is in (so no request pays the load)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            health = httpx.get(f"{url}/health", timeout=5).json()
            if health["models"]["custom_voice"]["loaded"]:
                return
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not become ready")
