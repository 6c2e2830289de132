"""The Wyoming TCP listener, started and stopped with the app's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid

from server.speech.catalog import VoiceCatalog
from server.speech.library import LibraryVoices, VoiceLibrary
from server.speech.synthesis import SpeechService
from server.speech.voice_resolution import PresetVoices, VoiceResolver
from server.wyoming.connection import ConnectionContext, WyomingConnection

log = logging.getLogger("qwen3-tts")

SERVER_VERSION = "0.1.0"


class WyomingServer:
    def __init__(self, context: ConnectionContext, host: str, port: int) -> None:
        self.context = context
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        # The stream's limit bounds a header line (read up to its newline) by MAX_JSON_BYTES.
        limit = self.context.max_event_bytes
        self._server = await asyncio.start_server(self._accept, self.host, self.port, limit=limit)
        log.info("wyoming server listening", extra={"host": self.host, "port": self.port})

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await WyomingConnection(reader, writer, self.context, f"wy-{uuid.uuid4().hex[:12]}").run()
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets (tests narrow their send buffer, which accepted ones inherit)."""
        return tuple(self._server.sockets) if self._server is not None else ()

    @property
    def connections(self) -> int:
        """Connections open now (for tests and logs)."""
        return len(self._connections)

    async def stop(self) -> None:
        """Stop listening, then close every connection (a synthesis in progress stops)."""
        if self._server is not None:
            self._server.close()
        connections = list(self._connections)
        for task in connections:
            task.cancel()
        for task in connections:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.wait_closed()
        log.info("wyoming server stopped", extra={"port": self.port})


def build_wyoming_server(
    service: SpeechService,
    library: VoiceLibrary,
    send_timeout: float,
    *,
    host: str,
    port: int,
    keyed: bool,
    catalog: VoiceCatalog | None = None,
    max_event_bytes: int = 256 * 1024,
) -> WyomingServer:
    """The server for WYOMING_HOST:WYOMING_PORT. Wyoming carries no credentials, so with
    API_KEYS set (`keyed`) it offers the presets alone: saved voices (people's voices) stay
    behind the key, as in the HTTP voice list. An event may hold `max_event_bytes`
    (MAX_JSON_BYTES) in all; a larger one is refused from its header (see framing.py)."""
    catalog = catalog or VoiceCatalog()
    voices: VoiceResolver = PresetVoices(catalog) if keyed else LibraryVoices(library, catalog)
    context = ConnectionContext(
        service, voices, None if keyed else library, send_timeout, SERVER_VERSION, catalog, max_event_bytes
    )
    return WyomingServer(context, host, port)
