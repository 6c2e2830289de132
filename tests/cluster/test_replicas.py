"""`qwen3-tts-server ray --replicas 2` on a local Ray cluster, driven through Serve's proxy
with real clients: requests spread over both replicas, streams pass through unbuffered, a
voice saved through one replica speaks through the other, and a killed replica is
replaced while the other answers."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import ray
from httpx_sse import connect_sse
from ray import serve

from server.cluster.cli import APP_NAME
from tests.cluster.conftest import RayCluster
from tests.cluster.support import another_replica, answered_by, app_running, health, replica_of, wait_for
from tests.http.test_voice_library import assert_speech, create, speak
from tests.support.audio import decode_pcm16

pytestmark = pytest.mark.ray

WS_ROUTE = "/v1/audio/speech/ws"
THREE = "First sentence here. Second one follows. And the third ends it."
LONG = " ".join(f"This is sentence number {i} of a long text." for i in range(40))


@dataclass
class Deployed:
    cluster: RayCluster
    log: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.cluster.base_url, timeout=120.0)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture(scope="module")
def deployed(
    ray_cluster: RayCluster, custom_voice_dir: Path, base_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployed]:
    """The `ray` command, run as a user would (settings in the environment), connected to
    the test's cluster; stopped with SIGTERM at the end, which must remove the app."""
    env = {
        "MODEL_ID": str(custom_voice_dir),
        "CLONE_MODEL_ID": str(base_dir),
        "DEVICE": "cpu",
        "HOST": "127.0.0.1",
        "PORT": str(ray_cluster.port),
        "WARMUP": "false",
        "TORCH_THREADS": "1",
        "IDLE_TIMEOUT": "0",
        "PRELOAD_MODEL": "true",
        "MAX_NEW_TOKENS": "64",
        "SHUTDOWN_GRACE": "5",
        "VOICES_DIR": str(tmp_path_factory.mktemp("shared-voices")),
        # Both replicas run on this machine: they share one job store (docs/jobs.md).
        "JOBS_DIR": str(tmp_path_factory.mktemp("shared-jobs")),
    }
    log = tmp_path_factory.mktemp("ray-command") / "output.log"
    argv = [sys.executable, "-m", "server", "ray", "--address", ray_cluster.address, "--replicas", "2"]
    argv += ["--num-cpus", "1"]
    with log.open("wb") as output:
        command = subprocess.Popen(argv, env={**os.environ, **env}, stdout=output, stderr=subprocess.STDOUT)
    running = Deployed(ray_cluster, log)
    try:
        wait_for(lambda: command.poll() is not None or app_running(APP_NAME, 2), "two running replicas")
        assert command.poll() is None, running.log_tail()
        with running.client() as client:
            wait_for(lambda: client.get("/health").status_code == 200, "the proxy to route /health")
        yield running
    finally:
        command.send_signal(signal.SIGTERM)
        status = command.wait(timeout=120)
    assert status == 0, running.log_tail()
    assert APP_NAME not in serve.status().applications


def pcm(client: httpx.Client, text: str = "Hello there.") -> httpx.Response:
    body = {"model": "tts-1", "voice": "alloy", "input": text, "response_format": "pcm", "stream": False}
    return client.post("/v1/audio/speech", json=body)


def test_concurrent_requests_are_spread_over_both_replicas(deployed: Deployed) -> None:
    seen: set[str] = set()
    with deployed.client() as client, concurrent.futures.ThreadPoolExecutor(4) as pool:
        for _ in range(10):
            for response in pool.map(lambda i: pcm(client, f"Request number {i} asks."), range(4)):
                assert response.status_code == 200, response.text
                assert decode_pcm16(response.content).duration > 0.1
                # The proxy and the app both echo the request id: it is sent once.
                assert len(response.headers.get_list("x-request-id")) == 1
                seen.add(replica_of(response))
            if len(seen) == 2:
                break
    assert len(seen) == 2 and all(name.startswith("qwen3-tts#") for name in seen)


@pytest.mark.parametrize("stream_format", ["audio", "sse"])
def test_streams_pass_the_proxy_chunk_by_chunk(deployed: Deployed, stream_format: str) -> None:
    body = {"model": "tts-1", "voice": "alloy", "input": LONG, "response_format": "pcm", "stream_format": stream_format}
    with deployed.client() as client:
        with client.stream("POST", "/v1/audio/speech", json=body) as response:
            assert response.status_code == 200
            assert "content-length" not in response.headers
            streaming = replica_of(response)
            chunks = response.iter_raw()  # kept: a dropped iterator closes the response
            assert next(chunks)
            # The first chunk is here while its replica still works on the other 39
            # sentences: the proxy forwarded it instead of collecting the whole stream.
            seen = answered_by(lambda: client.get("/health"), streaming)
            assert seen.json()["queue_depth"] >= 1
        # Leaving the block disconnected: the replica frees the stream's queue slot.
        wait_for(
            lambda: (h := health(client))[0] == streaming and h[1]["queue_depth"] == 0, "the stream's slot to be freed"
        )


def test_sse_events_through_the_proxy(deployed: Deployed) -> None:
    body = {"model": "tts-1", "voice": "alloy", "input": THREE, "seed": 21}
    with deployed.client() as client:
        with connect_sse(client, "POST", "/v1/audio/speech/stream", json=body) as source:
            sentences = [event.data for event in source.iter_sse() if event.event != "finish"]
        with connect_sse(
            client, "POST", "/v1/audio/speech", json={**body, "stream_format": "sse", "response_format": "pcm"}
        ) as source:
            openai_events = [json.loads(event.data) for event in source.iter_sse()]
        whole = client.post("/v1/audio/speech", json={**body, "response_format": "pcm", "stream": False})
    assert sentences[-1] == "[DONE]" and len(sentences) == 4
    deltas = len(openai_events) - 1
    assert deltas > 1 and [e["type"] for e in openai_events] == ["speech.audio.delta"] * deltas + ["speech.audio.done"]
    assert whole.status_code == 200
    assert all(decode_pcm16(base64.b64decode(d)).duration > 0.1 for d in sentences[:-1])
    streamed = b"".join(base64.b64decode(e["audio"]) for e in openai_events[:-1])
    # Same seed, same checkpoint: whichever replica answered, the audio is the same.
    assert streamed == whole.content
    assert decode_pcm16(streamed).duration > 0.3


def test_websocket_through_the_proxy(deployed: Deployed) -> None:
    from websockets.sync.client import connect

    url = deployed.cluster.base_url.replace("http://", "ws://") + WS_ROUTE
    with connect(url, open_timeout=60) as socket:
        assert socket.response is not None and socket.response.headers["x-replica"].startswith("qwen3-tts#")
        socket.send(json.dumps({"input": "Hello over a socket. Two sentences.", "voice": "alloy"}))
        audio = b""
        while isinstance(message := socket.recv(timeout=120), bytes):
            audio += message
    assert json.loads(message)["event"] == "done"
    assert decode_pcm16(audio).duration > 0.1


def test_a_voice_saved_through_one_replica_speaks_through_the_other(deployed: Deployed) -> None:
    with deployed.client() as client:
        saved = create(client, "Cluster Voice", ref_text="Words.")
        assert saved.status_code == 200, saved.text
        saver = replica_of(saved)
        other = another_replica(client, saver)
        spoken = answered_by(lambda: speak(client, "cluster voice"), other)
        assert_speech(spoken)
        listed = answered_by(lambda: client.get("/v1/audio/voices"), other).json()["voices"]
        assert [v["name"] for v in listed if v["type"] != "preset"] == ["Cluster Voice"]
        assert answered_by(lambda: create(client, "CLUSTER VOICE"), other).status_code == 409


def test_a_job_is_shared_by_the_replicas_and_survives_the_one_that_took_it(deployed: Deployed) -> None:
    """Accepted by one replica, seen by the other; the accepting replica is killed mid-job;
    the job still ends with the audio of its segments' single requests, in order."""
    texts = [f"Cluster line {i}." for i in range(12)]
    body = {"voice": "alloy", "inputs": [{"input": t} for t in texts], "item_pause_ms": 0, "response_format": "pcm"}
    with deployed.client() as client:
        created = client.post("/v1/audio/jobs", json={**body, "seed": 99, "max_new_tokens": 32})
        assert created.status_code == 202, created.text
        job_id, taker = created.json()["id"], replica_of(created)
        other = another_replica(client, taker)
        seen = answered_by(lambda: client.get(f"/v1/audio/jobs/{job_id}"), other)
        assert seen.status_code == 200
        wait_for(lambda: client.get(f"/v1/audio/jobs/{job_id}").json()["progress"]["segments_done"] >= 2, "progress")
        ray.kill(ray.get_actor(f"SERVE_REPLICA::{APP_NAME}#{taker}", namespace="serve"), no_restart=True)
        job = wait_for(
            lambda: (
                (r := client.get(f"/v1/audio/jobs/{job_id}")).status_code == 200
                and r.json()["status"] in ("succeeded", "failed")
                and r.json()
            ),
            "the job to end",
        )
        assert job["status"] == "succeeded", job
        content = client.get(f"/v1/audio/jobs/{job_id}/content").content
        expected = b""
        for i, text in enumerate(texts):
            single = {"voice": "alloy", "input": text, "seed": 99 + i, "max_new_tokens": 32}
            response = client.post("/v1/audio/speech", json={**single, "response_format": "pcm", "stream": False})
            assert response.status_code == 200, response.text
            expected += response.content
        assert content == expected
        wait_for(lambda: app_running(APP_NAME, 2), "the killed replica to be replaced")


def test_a_killed_replica_is_replaced_and_the_other_answers_meanwhile(deployed: Deployed) -> None:
    with deployed.client() as client:
        victim = replica_of(pcm(client))
        # Serve names a replica's actor SERVE_REPLICA::<app>#<deployment>#<id>; the header is <deployment>#<id>.
        ray.kill(ray.get_actor(f"SERVE_REPLICA::{APP_NAME}#{victim}", namespace="serve"), no_restart=True)
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            meanwhile = list(pool.map(lambda i: pcm(client, f"Meanwhile {i}."), range(6)))
        for response in meanwhile:  # answered (none hangs: each returned within the client timeout)
            if response.status_code == 200:
                assert replica_of(response) != victim and decode_pcm16(response.content).duration > 0.1
            else:
                assert response.status_code == 503, response.text
        assert any(r.status_code == 200 for r in meanwhile)
        survivors = {replica_of(r) for r in meanwhile if r.status_code == 200}

        def new_replica_answers() -> str | None:
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                names = {replica_of(r) for r in pool.map(lambda _: client.get("/health"), range(2))}
            return next(iter(names - survivors - {victim}), None)

        wait_for(new_replica_answers, "a new replica to replace the killed one", interval=1.0)
    assert app_running(APP_NAME, 2)
