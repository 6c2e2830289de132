"""A mixed load with faults against one server with a tiny REQUEST_TIMEOUT: about 200
requests, up to 32 at once, streamed and whole, every format, both SSE kinds, clones; a
quarter of the clients leave mid-stream, a few stop reading, some send bad input. Nothing
hangs, nothing answers 5xx but the documented 503 and 504, the queue returns to 0, the
server still serves, and the log's status for every request is what its client saw."""

from __future__ import annotations

import concurrent.futures
import random
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.audio.formats import SUPPORTED_FORMATS
from tests.support.live_server import LiveServer, RecordCollector, live_server
from tests.support.rawhttp import connect, post_json
from tests.support.reference import wav

REQUESTS = 200
CONCURRENCY = 32
TEXTS = ("Hello there.", "One sentence. And another one.", "A first line, then more. Then a last one here.")
GONE = "gone"  # the client left mid-stream: the server should log 499


def scenario(index: int, rng: random.Random) -> dict[str, Any]:
    kind = rng.choices(
        ["whole", "audio", "openai-sse", "sentence-sse", "clone", "leave", "bad"], weights=[3, 3, 2, 2, 1, 4, 1]
    )[0]
    body = {"model": "tts-1", "voice": rng.choice(["alloy", "Ryan", "nova"]), "input": rng.choice(TEXTS)}
    body["response_format"] = rng.choice(SUPPORTED_FORMATS)
    if kind == "leave":  # long enough that the server cannot have sent it all already
        body["input"] = " ".join(TEXTS * 3)
    if kind == "bad":
        body[rng.choice(["speed", "voice", "response_format"])] = rng.choice([9, "nobody", "midi"])
    return {"id": f"load-{index}", "kind": kind, "body": body}


def run(server: LiveServer, job: dict[str, Any]) -> list[tuple[str, int | str]]:
    """Play one client as the OpenAI SDK would: a 503 is retried after its Retry-After, up
    to three tries. Returns each try's request id and the status its client saw."""
    outcomes: list[tuple[str, int | str]] = []
    for attempt in range(3):
        request_id = f"{job['id']}-{attempt}"
        outcome = play(server, job, request_id)
        outcomes.append((request_id, outcome))
        if outcome != 503:
            break
        time.sleep(1)  # the server's Retry-After
    return outcomes


def play(server: LiveServer, job: dict[str, Any], request_id: str) -> int | str:
    """One try; returns the status its client saw (or GONE, or the SSE error's status)."""
    headers = {"X-Request-ID": request_id}
    body = job["body"]
    with httpx.Client(base_url=server.base_url, timeout=60, headers=headers) as client:
        kind = job["kind"]
        if kind in ("whole", "bad"):
            return client.post("/v1/audio/speech", json={**body, "stream": False}).status_code
        if kind == "clone":
            files = {"file": ("ref.wav", wav(seed=len(job["id"])))}
            data = {"input": body["input"], "response_format": body["response_format"]}
            return client.post("/v1/audio/speech/clone", data=data, files=files).status_code
        path = "/v1/audio/speech/stream" if kind == "sentence-sse" else "/v1/audio/speech"
        if kind == "openai-sse":
            body = {**body, "stream_format": "sse"}
        with client.stream("POST", path, json=body) as response:
            if response.status_code != 200:
                return response.status_code
            if kind == "leave":
                next(response.iter_raw())
                return GONE
            try:
                text = b"".join(response.iter_raw()).decode("latin-1")
            except httpx.RemoteProtocolError:
                return 504  # an audio stream cut short: the deadline passed mid-stream
            if "speech.audio.error" in text or "[ERROR]" in text:
                return 504
            return 200


def stall(server: LiveServer, count: int) -> list[socket.socket]:
    sockets = []
    for i in range(count):
        sock = connect(server.port, receive_buffer=4096)
        # Slowed down four times: far more audio than the socket buffers hold.
        text = " ".join(TEXTS * 12)
        body = {"model": "tts-1", "voice": "alloy", "input": text, "response_format": "wav", "speed": 0.25}
        post_json(sock, "/v1/audio/speech", body, {"X-Request-ID": f"stall-{i}"})
        sockets.append(sock)
    return sockets


@pytest.mark.slow
def test_mixed_load_with_faults(custom_voice_dir: Path, base_dir: Path, tmp_path: Path) -> None:
    rng = random.Random(13)
    jobs = [scenario(i, rng) for i in range(REQUESTS)]
    with (
        RecordCollector().attached() as log,
        live_server(
            send_buffer=4096,
            model_id=str(custom_voice_dir),
            clone_model_id=str(base_dir),
            voices_dir=tmp_path,
            preload_model=True,
            request_timeout=8,
            send_timeout=2,
            max_new_tokens=8,
            max_batch_size=8,
        ) as server,
    ):
        stalled = stall(server, 4)
        with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
            seen = dict(outcome for outcomes in pool.map(lambda job: run(server, job), jobs) for outcome in outcomes)
        for sock in stalled:
            sock.close()
        deadline = time.monotonic() + 60
        while server.health()["queue_depth"] != 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.health()["queue_depth"] == 0
        with server.client() as client:
            assert client.post("/v1/audio/speech", json=jobs[0]["body"] | {"input": "Still here."}).status_code == 200
        lines = {**{f"stall-{i}": log.wait_for_request(f"stall-{i}", timeout=30) for i in range(4)}}
        logged = logged_statuses(log)
    counts = Counter(seen.values())
    print(f"mixed load: client outcomes {dict(counts)}")
    assert set(counts) <= {200, 400, 404, 503, 504, GONE}, counts
    assert counts[200] > 0 and counts[GONE] > 0
    for request_id, status in seen.items():
        # A client that left saw only the start; the server logs 499, or 504 when the deadline
        # passed before the disconnect reached it (both honest; never 200, it cannot have
        # sent the whole long text).
        expected = [[499], [504]] if status == GONE else [[status]]
        assert logged.get(request_id) in expected, (request_id, status, logged.get(request_id))
    for line in lines.values():
        assert line["status"] in (499, 504)


def logged_statuses(log: RecordCollector) -> dict[str, list[int]]:
    """Every request's logged statuses: its speech line, or its refusal line."""
    statuses: dict[str, list[int]] = {}
    for record in log.records:
        if record.getMessage() in ("speech request", "request refused"):
            statuses.setdefault(str(getattr(record, "request_id", None)), []).append(int(record.status))
    return statuses
