"""The web playground: the static page in server/playground/, served at /playground/ with
fixed media types and a content security policy, and GET / redirecting to it.

The page is plain HTML, CSS and JavaScript modules (no build step, nothing from a CDN, so
it works on a server without internet access). It calls the server's own API like any
other client, with the API key the user types in.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

PLAYGROUND_DIR = Path(__file__).resolve().parents[2] / "playground"
MOUNT_PATH = "/playground"

# Fixed rather than guessed: mimetypes reads the platform's tables, and a JavaScript module
# served as text/plain (as some systems map .js) is refused by the browser.
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}

# Scripts and styles only from the server's own files (no inline code, no eval), API calls
# only to this origin, audio from blob: URLs the page makes, and no framing.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidated on every load (an ETag makes that cheap), so an upgraded server is never
    # paired with a stale script.
    "Cache-Control": "no-cache",
}


class PlaygroundFiles(StaticFiles):
    """StaticFiles (ETags, HEAD, path safety) with our media types and security headers;
    files of any other type are not served."""

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        media_type = MEDIA_TYPES.get(PurePath(full_path).suffix.lower())
        if media_type is None:
            raise HTTPException(404, "Not Found")
        response = super().file_response(full_path, stat_result, scope, status_code)
        if isinstance(response, FileResponse):
            response.headers["Content-Type"] = media_type
        response.headers.update(SECURITY_HEADERS)
        return response


def install_playground(app: FastAPI, enabled: bool) -> None:
    """Serve the page at /playground/ and redirect / there; neither exists when disabled."""
    if not enabled:
        return

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse(f"{MOUNT_PATH}/", status_code=307)

    app.mount(MOUNT_PATH, PlaygroundFiles(directory=PLAYGROUND_DIR, html=True), name="playground")
