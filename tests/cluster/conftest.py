"""A local Ray cluster for the cluster tests, started once for this folder in the test
process: 4 logical CPUs (one per replica), Serve's proxy on 127.0.0.1 and a free port, and
autoscaling metrics pushed every half second (Serve's default is 10 s) so that scaling
decisions take seconds."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import server.cluster  # noqa: F401  (before Ray: keeps its workers in this environment under `uv run`)
from tests.support.live_server import free_port

ray = pytest.importorskip("ray", reason="Ray Serve is the optional `ray` extra (scripts/test installs it)")
from ray import serve  # noqa: E402

FAST_METRICS = {
    "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
    "RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
}


@dataclass(frozen=True)
class RayCluster:
    address: str  # the GCS address a second driver (the `ray` command) connects to
    port: int  # Serve's HTTP proxy

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="package")
def ray_cluster() -> Iterator[RayCluster]:
    saved = {name: os.environ.get(name) for name in FAST_METRICS}
    os.environ.update(FAST_METRICS)  # read by the processes ray.init starts
    context = ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    port = free_port()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        yield RayCluster(context.address_info["gcs_address"], port)
    finally:
        serve.shutdown()
        ray.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
