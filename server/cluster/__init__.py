"""Serving the app from several replicas on Ray Serve (the optional `ray` extra).

Nothing here is imported by the single-process server: `qwen3-tts-server` without the
`ray` command never imports Ray.
"""

import os

# A Ray driver started under `uv run` makes Ray start every worker with `uv run` too, in a
# copy of the current directory with an environment of its own: replicas then wait for a
# new environment to be built, or never start. They must run in the environment the server
# is installed in, as the command itself does. Ray reads this switch once, when it is
# imported, so it is set here, before any module of this package imports Ray.
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

# Serve's controller gives a starting HTTP proxy 5 s to answer before it kills it and starts
# another, and `serve.start` then fails on the one it killed. A proxy process imports Serve,
# Starlette and uvicorn first, which takes longer than that on a busy or small node: give it
# a minute (Serve's own limit on `serve.start`) unless the operator chose otherwise. Read by
# the controller, so it must be in the environment before `ray.init` starts a local cluster.
os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "60")
