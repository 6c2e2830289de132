"""A real uvicorn server on 127.0.0.1 and a free port, running the app in a background
thread of the test process (so the model package is imported once per test session),
reached by real HTTP clients."""

from __future__ import annotations

import logging
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from server.app import create_app
from server.config import Settings, load_settings
from server.http.asgi.uvicorn import uvicorn_options


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening_socket(send_buffer: int) -> socket.socket:
    """A listening socket whose connections get a small kernel send buffer (accepted sockets
    inherit it on Linux): a client that stops reading then blocks the server's sends after a
    few kilobytes instead of after the several megabytes loopback buffers grow to."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock.bind(("127.0.0.1", 0))
    return sock


class LiveServer:
    def __init__(
        self, settings: Settings, send_buffer: int | None = None, uvicorn_overrides: dict[str, Any] | None = None
    ) -> None:
        self.settings = settings
        self._socket = listening_socket(send_buffer) if send_buffer is not None else None
        self.port = int(self._socket.getsockname()[1]) if self._socket is not None else free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            loop="asyncio",
            timeout_graceful_shutdown=5,
            **{**uvicorn_options(settings), **(uvicorn_overrides or {})},  # the limits `qwen3-tts-server` uses
        )
        self._server = uvicorn.Server(config)
        sockets = [self._socket] if self._socket is not None else None
        self._thread = threading.Thread(
            target=self._server.run, args=(sockets,), name=f"uvicorn-{self.port}", daemon=True
        )

    def start(self, timeout: float = 30.0) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)

    @property
    def engine(self) -> Any:
        return self.app.state.engine

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=kwargs.pop("timeout", 120.0), **kwargs)

    def health(self) -> dict[str, Any]:
        with self.client() as client:
            response = client.get("/health")
            response.raise_for_status()
            result: dict[str, Any] = response.json()
            return result


def dev_settings(custom_voice_dir: Path, base_dir: Path, voices_dir: Path) -> dict[str, Any]:
    """Both dev checkpoints, no idle unload, pieces capped at 256 frames: what most tests
    that speak through HTTP share."""
    return {
        "model_id": str(custom_voice_dir),
        "clone_model_id": str(base_dir),
        "idle_timeout": 0,
        "voices_dir": voices_dir,
        "max_new_tokens": 256,
    }


@contextmanager
def live_server(
    send_buffer: int | None = None,
    uvicorn_overrides: dict[str, Any] | None = None,
    ready_timeout: float = 30.0,
    **overrides: Any,
) -> Iterator[LiveServer]:
    """Start a server with these settings (on top of the environment's), stop it after;
    `uvicorn_overrides` stands for a server in front that is configured otherwise;
    `ready_timeout` bounds its startup (a preloaded full-size model captures its graphs first)."""
    overrides.setdefault("warmup", False)
    # One torch thread: on two shared cores the tiny checkpoint runs several times faster.
    overrides.setdefault("torch_threads", 1)
    # A test that leaves a job behind (a stalled or vanished client) should not hold the next
    # test for the production drain of 30 s; 2 s still lets a finishing job end on its own.
    overrides.setdefault("shutdown_grace", 2.0)
    with tempfile.TemporaryDirectory(prefix="jobs-") as jobs_dir:
        # A job submitted to a test server (the schema fuzzer's, say) stays out of the tree.
        overrides.setdefault("jobs_dir", jobs_dir)
        server = LiveServer(load_settings(**overrides), send_buffer, uvicorn_overrides).start(ready_timeout)
        try:
            yield server
        finally:
            server.stop()


class RecordCollector(logging.Handler):
    """Keeps the log records of the server's request logger, for assertions on fields."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def requests(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        """The per-request log lines' fields, in order."""
        found = []
        for record in self.records:
            if record.name == "qwen3-tts" and record.getMessage() == "speech request":
                fields = dict(vars(record))
                if endpoint is None or fields.get("endpoint") == endpoint:
                    found.append(fields)
        return found

    def wait_for_request(self, request_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """The one request line of `request_id`, waiting for it: a stream's line is written
        when the server notices the stream has ended, a moment after the client leaves."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [line for line in self.requests() if line.get("request_id") == request_id]
            if lines or time.monotonic() > deadline:
                [line] = lines
                return line
            time.sleep(0.05)

    def wait_for_requests(
        self, count: int, endpoint: str | None = None, timeout: float = 120.0
    ) -> list[dict[str, Any]]:
        """The request lines (of `endpoint`), once there are at least `count` of them: a line is
        written after its response's last byte, a moment after the client has it all."""
        deadline = time.monotonic() + timeout
        while len(lines := self.requests(endpoint)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(lines) >= count, f"{len(lines)} request lines, expected {count}"
        return lines

    @contextmanager
    def attached(self, logger_name: str = "qwen3-tts", level: int = logging.DEBUG) -> Iterator[RecordCollector]:
        """Collect `logger_name`'s records (at `level` and above) while the block runs."""
        with attached_handler(self, logger_name, level):
            yield self

    def segments(self, request_id: str) -> list[logging.LogRecord]:
        """The per-segment records of one request, in the order they were synthesised."""
        return [
            r for r in self.records if r.name == "qwen3-tts.segments" and getattr(r, "request_id", None) == request_id
        ]


@contextmanager
def attached_handler(handler: logging.Handler, logger_name: str, level: int) -> Iterator[logging.Handler]:
    """Attach a handler to a logger at a level for the duration of the block, then restore."""
    logger = logging.getLogger(logger_name)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
