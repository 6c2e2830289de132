"""A local HTTP listener that records every request it gets: proof that nothing the server
was sent as a string was fetched as a URL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class RecordingListener:
    def __init__(self) -> None:
        self.paths: list[str] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                listener.paths.append(self.path)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"RIFF")

            do_POST = do_HEAD = do_GET

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"


@contextmanager
def recording_listener() -> Iterator[RecordingListener]:
    listener = RecordingListener()
    thread = threading.Thread(target=listener._server.serve_forever, daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        listener._server.shutdown()
        listener._server.server_close()
