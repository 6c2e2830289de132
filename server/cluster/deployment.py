"""The Ray Serve application: the server's own FastAPI app (built by `create_app` inside
each replica, lifespan and all) behind Serve's proxy, one model engine per replica.

`build_app` is the application builder a Serve config file names
(`import_path: server.cluster.deployment:build_app`); `speech_app` is what the
`qwen3-tts-server ray` command deploys. Both take the same `ClusterOptions`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from ray import serve
from ray.serve import Application
from starlette.types import ASGIApp

from server.app import create_app
from server.cluster.replica import ReplicaHeaderMiddleware
from server.config import Settings, load_settings
from server.logs import configure_logging

DEPLOYMENT_NAME = "qwen3-tts"


class ClusterOptions(BaseModel):
    """How many replicas, what each one needs, and the server settings they share.

    Either a fixed `replicas` count, or autoscaling between `min_replicas` and
    `max_replicas` on ongoing requests per replica (`target_ongoing_requests`, by default
    MAX_BATCH_SIZE: a replica holding a full batch is busy enough)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    replicas: int | None = Field(default=None, ge=1)
    min_replicas: int | None = Field(default=None, ge=0)
    max_replicas: int | None = Field(default=None, ge=1)
    target_ongoing_requests: float | None = Field(default=None, gt=0)
    upscale_delay_s: float = Field(default=30.0, ge=0)
    downscale_delay_s: float = Field(default=600.0, ge=0)
    look_back_period_s: float = Field(default=30.0, gt=0)  # the window load is averaged over
    # None: one GPU per replica, or none when DEVICE=cpu.
    num_gpus: float | None = Field(default=None, ge=0)
    num_cpus: float = Field(default=1.0, ge=0)
    # Requests Serve holds for a busy deployment before answering 503; None: MAX_QUEUE_DEPTH.
    max_queued_requests: int | None = Field(default=None, ge=-1)
    # Setting overrides (lower-case names, as in the environment); the rest comes from it.
    settings: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _fixed_or_autoscaled(self) -> ClusterOptions:
        if self.replicas is not None and self.autoscaling:
            raise ValueError("give either replicas (a fixed count) or min_replicas/max_replicas (autoscaling)")
        low, high = self.bounds
        if high < low:
            raise ValueError("max_replicas must be at least min_replicas")
        return self

    @property
    def autoscaling(self) -> bool:
        return self.min_replicas is not None or self.max_replicas is not None

    @property
    def bounds(self) -> tuple[int, int]:
        """Autoscaling's fewest and most replicas (1 and at least 1 when not given)."""
        low = self.min_replicas if self.min_replicas is not None else 1
        return low, self.max_replicas if self.max_replicas is not None else max(low, 1)


def deployment_options(options: ClusterOptions, settings: Settings) -> dict[str, Any]:
    """The Serve deployment options for these cluster options and server settings."""
    num_gpus = options.num_gpus if options.num_gpus is not None else (0.0 if settings.device == "cpu" else 1.0)
    result: dict[str, Any] = {
        "name": DEPLOYMENT_NAME,
        "ray_actor_options": {"num_gpus": num_gpus, "num_cpus": options.num_cpus},
        # Serve never sends a replica more than its queue admits; beyond that requests wait
        # in Serve (up to max_queued_requests, then 503) for whichever replica frees first.
        "max_ongoing_requests": settings.max_queue_depth,
        "max_queued_requests": (
            options.max_queued_requests if options.max_queued_requests is not None else settings.max_queue_depth
        ),
        # A replica being stopped drains like the single server does on SIGTERM.
        "graceful_shutdown_timeout_s": settings.shutdown_grace,
    }
    if options.autoscaling:
        low, high = options.bounds
        result["autoscaling_config"] = {
            "min_replicas": low,
            "max_replicas": high,
            "target_ongoing_requests": options.target_ongoing_requests or settings.max_batch_size,
            "upscale_delay_s": options.upscale_delay_s,
            "downscale_delay_s": options.downscale_delay_s,
            "look_back_period_s": options.look_back_period_s,
        }
    else:
        result["num_replicas"] = options.replicas or 1
    return result


class SpeechReplica:
    """One replica: the whole server (engine included) in a Ray actor. Serve calls
    `__serve_build_asgi_app__` inside the replica, then runs the app's lifespan there, so
    each replica starts and stops its own engine."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._app: Any = None

    def check_health(self) -> None:
        """Serve's health check: an engine whose inference thread is stuck is unhealthy, and
        Serve replaces the replica (ENGINE_STALL_TIMEOUT)."""
        engine = getattr(getattr(self._app, "state", None), "engine", None)
        if engine is not None and engine.stalled is not None:
            raise RuntimeError(engine.stalled)

    def __serve_build_asgi_app__(self) -> ASGIApp:
        configure_logging(self.settings.log_format, self.settings.log_level, self.settings.secret_values())
        context = serve.get_replica_context()
        # A stuck engine is reported to Serve (check_health) rather than ending the process.
        app = create_app(self.settings, exit_on_stall=False)
        self._app = app
        app.add_middleware(ReplicaHeaderMiddleware, replica=f"{context.deployment}#{context.replica_id.unique_id}")
        return app


def speech_app(options: ClusterOptions, settings: Settings) -> Application:
    """The application to deploy: SpeechReplica behind Serve's HTTP ingress (the app is
    built in each replica, not here: nothing of it is pickled)."""
    deployment = serve.deployment(**deployment_options(options, settings))(serve.ingress()(SpeechReplica))
    return deployment.bind(settings)


def build_app(args: dict[str, Any]) -> Application:
    """Serve's application builder: `args` from the config file, settings from the
    environment (`runtime_env.env_vars`) with `args["settings"]` on top."""
    options = ClusterOptions.model_validate(args)
    return speech_app(options, load_settings(**options.settings))
