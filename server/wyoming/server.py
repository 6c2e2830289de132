"""The Wyoming TCP listener, started and stopped with the app's lifespan.

It serves at most WYOMING_MAX_CONNECTIONS connections at once: one more is answered with an
`error` (503, too_many_connections) and closed. A connection that ends is closed politely
(its last bytes delivered, the client's last bytes read) within SEND_TIMEOUT, or aborted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid

from server.errors import APIError
from server.speech.catalog import VoiceCatalog
from server.speech.library import LibraryVoices, VoiceLibrary
from server.speech.sending import abort_connection
from server.speech.synthesis import SpeechService
from server.speech.voice_resolution import PresetVoices, VoiceResolver
from server.wyoming.connection import ConnectionContext, WyomingConnection

log = logging.getLogger("qwen3-tts")

SERVER_VERSION = "0.1.0"
DISCARD_CHUNK = 64 * 1024


async def close_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, send_timeout: float) -> None:
    """End a connection politely within `send_timeout` seconds (SEND_TIMEOUT), or abort it:
    the bytes already written go out with the end of the stream after them, and what the
    client still sends is read and dropped until it closes its side. (Closing with its bytes
    unread would reset the connection, and the client could lose the last answer, the
    `error` saying why the connection ends.)"""
    try:
        async with asyncio.timeout(send_timeout):
            if writer.can_write_eof():
                writer.write_eof()
            while await reader.read(DISCARD_CHUNK):
                pass
            writer.close()
            await writer.wait_closed()
    except TimeoutError:
        abort_connection(writer.transport)
    except OSError:  # reset by the client: gone already
        writer.close()


class WyomingServer:
    def __init__(self, context: ConnectionContext, host: str, port: int, max_connections: int = 64) -> None:
        self.context = context
        self.host = host
        self.port = port
        self.max_connections = max_connections  # WYOMING_MAX_CONNECTIONS
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()  # served
        self._refusing: set[asyncio.Task[None]] = set()  # over the cap, being answered
        self._closing: set[asyncio.Task[None]] = set()  # ended, being closed

    async def start(self) -> None:
        # The stream's limit bounds a header line (read up to its newline) by MAX_JSON_BYTES.
        limit = self.context.max_event_bytes
        self._server = await asyncio.start_server(self._accept, self.host, self.port, limit=limit)
        log.info("wyoming server listening", extra={"host": self.host, "port": self.port})

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connection = WyomingConnection(reader, writer, self.context, f"wy-{uuid.uuid4().hex[:12]}")
        over_cap = len(self._connections) >= self.max_connections
        tasks = self._refusing if over_cap else self._connections
        tasks.add(task)
        try:
            try:
                if over_cap:
                    await connection.close_with(self._too_many())
                else:
                    await connection.run()
            finally:
                tasks.discard(task)  # being closed, it no longer counts towards the cap
            self._closing.add(task)
            await close_connection(reader, writer, self.context.send_timeout)
        except asyncio.CancelledError:
            # stop() ends connections so. The task ends quietly (asyncio's stream server would
            # report a cancelled connection task as an error), without waiting on the client.
            writer.close()
        finally:
            self._closing.discard(task)

    def _too_many(self) -> APIError:
        message = (
            f"this Wyoming port serves at most {self.max_connections} connections at once "
            "(WYOMING_MAX_CONNECTIONS); try again later"
        )
        return APIError(503, message, "server_error", None, "too_many_connections")

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
        connections = [*self._connections, *self._refusing, *self._closing]
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
    event_timeout: float = 10.0,
    idle_timeout: float = 60.0,
    max_connections: int = 64,
) -> WyomingServer:
    """The server for WYOMING_HOST:WYOMING_PORT. Wyoming carries no credentials, so with
    API_KEYS set (`keyed`) it offers the presets alone: saved voices (people's voices) stay
    behind the key, as in the HTTP voice list. An event may hold `max_event_bytes`
    (MAX_JSON_BYTES) in all; a larger one is refused from its header (see framing.py). The
    timeouts and the cap are WYOMING_EVENT_TIMEOUT, WYOMING_IDLE_TIMEOUT and
    WYOMING_MAX_CONNECTIONS (docs/limits.md)."""
    catalog = catalog or VoiceCatalog()
    voices: VoiceResolver = PresetVoices(catalog) if keyed else LibraryVoices(library, catalog)
    context = ConnectionContext(
        service,
        voices,
        None if keyed else library,
        send_timeout,
        SERVER_VERSION,
        catalog,
        max_event_bytes,
        event_timeout,
        idle_timeout,
    )
    return WyomingServer(context, host, port, max_connections)
