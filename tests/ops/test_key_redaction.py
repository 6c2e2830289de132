"""No API key reaches a log line, a metric or /v1/requests/recent: a real server process with
API_KEYS set serves a browser-style WebSocket session keyed by `?api_key=` (which uvicorn's
WebSocket line writes with its query string), a refused one with another key in its query, and
HTTP requests with the key in the query and the header; then its whole log is read.

Its own process, not the SIGTERM run's (tests/support/ops.py): the log format and level are
set once per process, and this one reads text lines at DEBUG while the logging tests read the
SIGTERM run's lines as JSON at INFO."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from server.logs import REDACTED, Redactor
from tests.support.live_server import free_port
from tests.support.ops import _wait_until
from tests.support.ws import WS_PATH, receive_until_end, send

KEY = "sk-redaction-test-4f9a1c"
OTHER = "not-a-key-7b2e"
REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_redactor_removes_keys_known_or_not() -> None:
    redact = Redactor((KEY,))
    line = f'127.0.0.1:5 - "WebSocket {WS_PATH}?api_key={KEY}&x=1" [accepted] Authorization: Bearer {OTHER}'
    cleaned = redact(line)
    assert KEY not in cleaned and OTHER not in cleaned
    assert f"api_key={REDACTED}&x=1" in cleaned
    assert redact(f"GET /v1/models?voice=alloy&token={OTHER}") == f"GET /v1/models?voice=alloy&token={REDACTED}"
    assert redact("nothing secret here") == "nothing secret here"


def test_no_key_reaches_the_logs_metrics_or_recent_requests(custom_voice_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "MODEL_ID": str(custom_voice_dir),
        "LOG_FORMAT": "text",
        "LOG_LEVEL": "DEBUG",
        "IDLE_TIMEOUT": "0",
        "MAX_NEW_TOKENS": "24",
        "TORCH_THREADS": "1",
        "WARMUP": "false",
        "API_KEYS": KEY,
        "VOICES_DIR": str(tmp_path / "voices"),
    }
    log_path = tmp_path / "server.log"
    auth = {"Authorization": f"Bearer {KEY}"}
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server"], cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
        try:
            assert _wait_until(lambda: httpx.get(f"{base_url}/health", timeout=2).status_code == 200, 120, 0.2)
            url = f"ws://127.0.0.1:{port}{WS_PATH}"
            with connect(f"{url}?api_key={KEY}", proxy=None, open_timeout=30) as socket:
                send(socket, {"input": "Keys stay out of the logs.", "voice": "alloy"})
                assert receive_until_end(socket).last["event"] == "done"
            with pytest.raises(InvalidStatus), connect(f"{url}?api_key={OTHER}", proxy=None, open_timeout=30):
                pass  # refused: 401 on the handshake
            with httpx.Client(base_url=base_url, timeout=120) as client:
                assert client.get(f"/v1/models?api_key={KEY}", headers=auth).status_code == 200
                speech = {"model": "tts-1", "voice": "alloy", "input": "Hello.", "stream": False}
                assert client.post(f"/v1/audio/speech?api_key={KEY}", json=speech, headers=auth).status_code == 200
                refused = client.get(f"/v1/audio/speech?token={OTHER}", headers={"Authorization": f"Bearer {OTHER}"})
                assert refused.status_code in (401, 405)
                recent = client.get("/v1/requests/recent", headers=auth).text
                metrics = client.get("/metrics", headers=auth).text
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    log = log_path.read_text()
    assert "[accepted]" in log  # the WebSocket line was written...
    assert f"api_key={REDACTED}" in log  # ...with its key removed
    for secret in (KEY, OTHER):
        assert secret not in log
        assert secret not in recent
        assert secret not in metrics
