"""Cross-origin access for browser clients, off unless CORS_ORIGINS names origins."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

# What a browser client of this API sends and needs to read back: the bearer key and JSON
# body on the way in; the request id and the download file name on the way out.
ALLOWED_HEADERS = ["Authorization", "Content-Type", "X-Request-ID"]
EXPOSED_HEADERS = ["X-Request-ID", "Content-Disposition", "X-Seed"]
ALLOWED_METHODS = ["GET", "POST", "DELETE", "OPTIONS"]


def install_cors(app: FastAPI, origins: Sequence[str]) -> None:
    """Added last, so it is the outermost middleware: preflights are answered before
    authentication (a preflight never carries the key) and before request counting."""
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_methods=ALLOWED_METHODS,
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        max_age=600,
    )
