"""`qwen3-tts-server ray`: the server on Ray Serve, several replicas behind Serve's proxy on
HOST:PORT. Server settings come from the environment, as for the single server.

    qwen3-tts-server ray --replicas 2                       two replicas, a local Ray cluster
    qwen3-tts-server ray --min-replicas 1 --max-replicas 4  autoscaling on ongoing requests
    qwen3-tts-server ray --address auto --replicas 8        on a running cluster (`ray start`)

Runs until SIGTERM or Ctrl-C, then drains the replicas (SHUTDOWN_GRACE) and removes the
application (and stops the local cluster it started).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from server.config import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from server.cluster.deployment import ClusterOptions

APP_NAME = "qwen3-tts"
log = logging.getLogger("qwen3-tts")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qwen3-tts-server ray", description=__doc__, formatter_class=_Raw)
    p.add_argument("--address", help="a running Ray cluster ('auto' finds the local one); default: start one")
    p.add_argument("--replicas", type=int, help="a fixed number of replicas (default 1)")
    p.add_argument("--min-replicas", type=int, help="autoscaling: fewest replicas")
    p.add_argument("--max-replicas", type=int, help="autoscaling: most replicas")
    p.add_argument("--target-ongoing-requests", type=float, help="autoscaling target per replica (MAX_BATCH_SIZE)")
    p.add_argument(
        "--upscale-delay", dest="upscale_delay_s", type=float, help="seconds of load before adding a replica (30)"
    )
    p.add_argument(
        "--downscale-delay", dest="downscale_delay_s", type=float, help="seconds of calm before removing one (600)"
    )
    p.add_argument("--num-gpus", type=float, help="GPUs per replica (1; 0 with DEVICE=cpu)")
    p.add_argument("--num-cpus", type=float, help="CPUs per replica (1)")
    p.add_argument("--max-queued-requests", type=int, help="requests Serve holds before 503 (MAX_QUEUE_DEPTH)")
    return p


class _Raw(argparse.RawDescriptionHelpFormatter):
    pass


def cluster_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ClusterOptions fields given on the command line (every option but --address)."""
    return {name: value for name, value in vars(args).items() if name != "address" and value is not None}


def with_absolute_paths(settings: Settings) -> Settings:
    """Replicas do not run in this directory: relative paths are resolved here (a model id
    that is not an existing directory is a hub id and stays as it is)."""
    update: dict[str, Any] = {"voices_dir": settings.voices_dir.resolve()}
    for field in ("model_id", "clone_model_id", "design_model_id", "aligner_model_id"):
        path = Path(getattr(settings, field))
        if getattr(settings, field) and path.exists():  # an empty id (a slot that is off) stays empty
            update[field] = str(path.resolve())
    return settings.model_copy(update=update)


def missing_gpus(options: ClusterOptions, settings: Settings, cluster_gpus: float) -> str | None:
    """What is missing when the replicas ask for more GPUs than the cluster has (Serve would
    otherwise wait for them forever, repeating the autoscaler's complaint), with how to run."""
    from server.cluster.deployment import deployment_options

    deployment = deployment_options(options, settings)
    per_replica = float(deployment["ray_actor_options"]["num_gpus"])
    replicas = options.bounds[0] if options.autoscaling else (options.replicas or 1)
    needed = per_replica * max(replicas, 1)
    if needed <= cluster_gpus:
        return None
    return (
        f"the replicas need {needed:g} GPU(s) ({replicas} x {per_replica:g}) but the Ray cluster has "
        f"{cluster_gpus:g}. On CPUs run `DEVICE=cpu qwen3-tts-server ray --num-gpus 0 ...`; "
        "otherwise add GPU nodes to the cluster or ask for fewer replicas (--num-gpus, --replicas)."
    )


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        settings = with_absolute_paths(load_settings())
    except SettingsError as exc:
        print(f"qwen3-tts-server: {exc}", file=sys.stderr)
        return 2
    from server.cluster.deployment import ClusterOptions, speech_app

    try:
        options = ClusterOptions(**cluster_options(args))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}" for e in exc.errors())
        print(f"qwen3-tts-server ray: {problems}", file=sys.stderr)
        return 2

    import ray
    from ray import serve

    from server.logs import configure_logging

    configure_logging(settings.log_format, settings.log_level, settings.secret_values())
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    own_cluster = args.address is None
    ray.init(address=args.address, include_dashboard=False if own_cluster else None)
    resources = ray.cluster_resources()  # type: ignore[no-untyped-call]
    problem = missing_gpus(options, settings, float(resources.get("GPU", 0.0)))
    if problem is not None:
        print(f"qwen3-tts-server ray: {problem}", file=sys.stderr)
        ray.shutdown()
        return 3
    # After ray.init, which installs its own fatal-signal handlers.
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        serve.start(http_options={"host": settings.host, "port": settings.port})
        serve.run(speech_app(options, settings), name=APP_NAME, route_prefix="/")
        log.info("cluster ready", extra={"host": settings.host, "port": settings.port, **cluster_options(args)})
        stop.wait()
        log.info("stopping: draining the replicas")
    finally:
        if own_cluster:
            serve.shutdown()  # type: ignore[no-untyped-call]
        else:
            serve.delete(APP_NAME)
        ray.shutdown()
    return 0
