"""uvicorn's options that follow the server's settings, for every place that starts it (the
command, the tests' live servers), so they all enforce the same limits.

Its protocols are uvicorn's own (httptools, websockets-sansio), each offering the app one
thing more: the abort of its connection, as the ASGI extension ABORT_EXTENSION in the scope.
The send guard (server/http/asgi/sending.py) drops a client that stopped reading with it, since
uvicorn's close would wait for the unsent bytes to drain, which never happens.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

from server.config import Settings
from server.http.asgi.sending import ABORT_EXTENSION
from server.speech.sending import abort_connection


class AbortableHttpProtocol(HttpToolsProtocol):
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {ABORT_EXTENSION: {"abort": partial(abort_connection, self.transport)}}


class AbortableWebSocketProtocol(WebSocketsSansIOProtocol):
    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # none when the handshake was refused
        if scope is not None:
            scope["extensions"][ABORT_EXTENSION] = {"abort": partial(abort_connection, self.transport)}


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "http": AbortableHttpProtocol,
        "ws": AbortableWebSocketProtocol,
        # A WebSocket message is refused (close 1009) once its frame header declares more
        # than a JSON body may hold, before its payload is read or parsed.
        "ws_max_size": settings.max_json_bytes,
        "ws_ping_interval": settings.ws_ping_interval or None,
        "ws_ping_timeout": settings.ws_ping_timeout,
        "access_log": False,
        "log_config": None,  # keep the handlers the server configured
    }
