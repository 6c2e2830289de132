"""`qwen3-tts-server` (or `python -m server`): serve, or build a dev checkpoint.

qwen3-tts-server                      start the HTTP server (settings from the environment)
qwen3-tts-server ray [...]            serve from several replicas on Ray Serve (the `ray` extra)
qwen3-tts-server devmodel DIR [...]   build a small random checkpoint for tests and smoke tests
qwen3-tts-server job FILE -o OUT [...] send a .txt/.md file to a running server as a long-audio
                                      job, show its progress, download the result (docs/jobs.md)
"""

from __future__ import annotations

import math
import signal
import sys
from types import FrameType


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def serve() -> int:
    import uvicorn

    from server.app import create_app
    from server.config import SettingsError, load_settings
    from server.http.asgi.uvicorn import uvicorn_options
    from server.logs import configure_logging

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"qwen3-tts-server: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level, settings.secret_values())
    from server.engine.slots.aligner import AlignerUnavailable
    from server.engine.slots.quantize import QuantizeUnsupported
    from server.speech.catalog import VoiceMapError
    from server.speech.pronunciation_file import PronunciationFileError
    from server.speech.speakers import CheckpointConfigError

    try:
        app = create_app(settings)
    except (
        VoiceMapError,
        PronunciationFileError,
        CheckpointConfigError,
        QuantizeUnsupported,
        AlignerUnavailable,
    ) as exc:
        print(f"qwen3-tts-server: {exc}", file=sys.stderr)
        return 2
    # uvicorn catches SIGTERM, shuts down gracefully, then re-raises the signal once its own
    # handler is gone; with the default handler that kills the process (exit 143) after a
    # clean shutdown. This handler turns that re-raise into exit status 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        timeout_keep_alive=65,
        # In-flight requests and streams get SHUTDOWN_GRACE to finish (uvicorn cancels what
        # is left); the lifespan then unloads the models, by then with nothing in flight.
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace),
        **uvicorn_options(settings),  # protocols, WebSocket limits, logging
    )
    return 0


def ray_command(args: list[str]) -> int:
    try:
        from server.cluster.cli import main as cluster_main
    except ImportError as exc:  # Ray is an optional extra
        print(f"qwen3-tts-server ray: Ray Serve is not installed ({exc}); install the `ray` extra", file=sys.stderr)
        return 2
    return cluster_main(args)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "devmodel":
        from server.devmodel import main as devmodel_main

        return devmodel_main(args[1:])
    if args and args[0] == "ray":
        return ray_command(args[1:])
    if args and args[0] == "job":
        from server.jobs.cli import main as job_main

        return job_main(args[1:])
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if args:
        print(f"qwen3-tts-server: unknown command {args[0]!r}\n{__doc__}", file=sys.stderr)
        return 2
    return serve()


if __name__ == "__main__":
    sys.exit(main())
