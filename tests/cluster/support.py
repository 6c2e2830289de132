"""Helpers for driving a Serve application over HTTP: which replica answered, waiting for
states with a deadline, and the application's replica counts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from ray import serve

T = TypeVar("T")


def replica_of(response: httpx.Response) -> str:
    return response.headers["x-replica"]


def wait_for(condition: Callable[[], T], what: str, timeout: float = 300.0, interval: float = 0.2) -> T:
    """Poll `condition` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def answered_by(send: Callable[[], httpx.Response], replica: str, attempts: int = 60) -> httpx.Response:
    """Send until `replica` answers. With no load Serve picks either replica at random, so
    60 tries miss one of two replicas with a probability of 2**-60."""
    for _ in range(attempts):
        response = send()
        if replica_of(response) == replica:
            return response
    raise AssertionError(f"{replica} answered none of {attempts} requests")


def another_replica(client: httpx.Client, than: str, attempts: int = 60) -> str:
    """The name of a replica other than `than` (asking /health until another one answers)."""
    for _ in range(attempts):
        name = replica_of(client.get("/health"))
        if name != than:
            return name
    raise AssertionError(f"only {than} answered {attempts} requests")


def replica_states(app: str) -> dict[str, int]:
    status = serve.status().applications.get(app)
    if status is None:
        return {}
    return dict(next(iter(status.deployments.values())).replica_states)


def app_running(app: str, replicas: int) -> bool:
    status = serve.status().applications.get(app)
    return status is not None and status.status == "RUNNING" and replica_states(app) == {"RUNNING": replicas}


def health(client: httpx.Client) -> tuple[str, dict[str, Any]]:
    response = client.get("/health")
    response.raise_for_status()
    return replica_of(response), response.json()
