"""Autoscaling between 1 and 2 replicas on ongoing requests, with Serve's delays shortened:
a burst of concurrent requests brings up the second replica (and it serves), and it goes
away once the burst is over. Deployed through `build_app`, the builder a Serve config
file names, with arguments shaped as in deploy/ray/serve-config.yaml."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
from ray import serve

from server.cluster.deployment import build_app
from tests.cluster.conftest import RayCluster
from tests.cluster.support import app_running, replica_of, replica_states, wait_for

pytestmark = pytest.mark.ray

APP = "autoscaled"


def test_a_burst_adds_a_replica_that_goes_away_after_it(
    ray_cluster: RayCluster, custom_voice_dir: Path, tmp_path: Path
) -> None:
    args = {
        "min_replicas": 1,
        "max_replicas": 2,
        "target_ongoing_requests": 1,
        "upscale_delay_s": 0,
        "downscale_delay_s": 2,
        "look_back_period_s": 2,
        "num_cpus": 1,
        "settings": {
            "model_id": str(custom_voice_dir),
            "clone_model_id": str(custom_voice_dir),
            "device": "cpu",
            "warmup": False,
            "torch_threads": 1,
            "idle_timeout": 0,
            "preload_model": True,
            "max_new_tokens": 64,
            "shutdown_grace": 5,
            "voices_dir": str(tmp_path),
        },
    }
    stop = threading.Event()
    answered: set[str] = set()
    statuses: list[int] = []

    def keep_asking() -> None:
        body = {"model": "tts-1", "voice": "alloy", "input": "A burst of ordinary sentences.", "response_format": "pcm"}
        with httpx.Client(base_url=ray_cluster.base_url, timeout=120) as client:
            while not stop.is_set():
                response = client.post("/v1/audio/speech", json={**body, "stream": False})
                statuses.append(response.status_code)
                if response.status_code == 200:
                    answered.add(replica_of(response))

    burst = [threading.Thread(target=keep_asking) for _ in range(4)]
    try:
        # Inside the try: an app left behind by a failed deploy would hold the route for the
        # other cluster tests.
        serve.run(build_app(args), name=APP, route_prefix="/")
        assert app_running(APP, 1)
        for thread in burst:
            thread.start()
        # Four requests in flight against a target of one per replica: Serve adds the second.
        wait_for(lambda: len(answered) == 2, "a second replica to answer during the burst")
        stop.set()
        for thread in burst:
            thread.join(timeout=120)
        assert set(statuses) == {200}
        wait_for(lambda: replica_states(APP) == {"RUNNING": 1}, "the second replica to go after the burst")
    finally:
        stop.set()
        serve.delete(APP)
