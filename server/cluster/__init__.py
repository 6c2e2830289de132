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
