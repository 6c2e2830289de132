"""Serving the app from several replicas on Ray Serve (the optional `ray` extra).

Nothing here is imported by the single-process server: `qwen3-tts-server` without the
`ray` command never imports Ray.
"""
