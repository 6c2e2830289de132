"""A local Ray cluster for the cluster tests, started once for this folder in the test
process: 4 logical CPUs (one per replica), Serve's proxy on 127.0.0.1 and a free port, and
autoscaling metrics pushed every half second (Serve's default is 10 s) so that scaling
decisions take seconds."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

import server.cluster  # noqa: F401  (before Ray: keeps its workers in this environment under `uv run`)
from tests.support.engine_control import wait_until
from tests.support.live_server import free_port

ray = pytest.importorskip("ray", reason="Ray Serve is the optional `ray` extra (scripts/test installs it)")
from ray import serve  # noqa: E402

RAY_ENVIRONMENT = {
    "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
    "RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
    # Ray starts its workers (the replicas) at nice 15. Beside other test workers keeping the
    # cores busy (scripts/test runs the suite on pytest-xdist), a niced replica starves and a
    # deploy or a scale-up waits for minutes; at the tests' own priority it gets its share.
    "RAY_worker_niceness": "0",
}


@dataclass(frozen=True)
class RayCluster:
    address: str  # the GCS address a second driver (the `ray` command) connects to
    port: int  # Serve's HTTP proxy

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# How long a busy machine may take to bring Serve's HTTP proxy up (it answers in seconds on
# an idle one); only a hung start waits this long.
PROXY_START_SECONDS = 300


def proxy_answers(port: int) -> bool:
    """Whether the proxy answers HTTP at all (before any app is deployed it answers 503)."""
    try:
        httpx.get(f"http://127.0.0.1:{port}/-/routes", timeout=5)
    except httpx.HTTPError:
        return False
    return True


def start_serve(port: int) -> None:
    """Start Serve and wait until its HTTP proxy answers. `serve.start` gives the proxy 60 s
    and then raises, and it raises sooner when the controller replaced a proxy that was slow
    to start; on a machine whose cores are busy either can happen while the controller goes
    on starting the proxy. So a failed start connects to that controller instead, and the
    proxy is waited for with a generous deadline."""
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
    except (TimeoutError, ray.exceptions.RayActorError):
        serve.start(http_options={"host": "127.0.0.1", "port": port})  # the controller is still up
    wait_until(lambda: proxy_answers(port), timeout=PROXY_START_SECONDS, interval=0.5)


@pytest.fixture(scope="package")
def ray_cluster() -> Iterator[RayCluster]:
    saved = {name: os.environ.get(name) for name in RAY_ENVIRONMENT}
    os.environ.update(RAY_ENVIRONMENT)  # read by the processes ray.init starts
    context = ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    port = free_port()
    try:
        start_serve(port)
        yield RayCluster(context.address_info["gcs_address"], port)
    finally:
        serve.shutdown()
        ray.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
