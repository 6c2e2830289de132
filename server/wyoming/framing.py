"""Reading Wyoming events with a bound on their size.

An event is a JSON header line, then `data_length` bytes of JSON data, then `payload_length`
bytes of payload. The `wyoming` package's reader trusts both lengths (it reads, and keeps,
whatever a client declares) and reads the header line up to the stream's limit. Here the
header line is read up to MAX_JSON_BYTES (the stream's limit is set to it) and an event
whose header, data and payload together would pass MAX_JSON_BYTES is refused from its header
alone, before a byte of its body is read: the same bound as HTTP bodies and WebSocket
messages.

Two kinds of bad input: an event whose framing is intact but whose content is wrong (its data
is not a JSON object, its type is not a string) is read in full and comes back as an
APIError to answer, the connection going on; a header that is not Wyoming's framing or that
declares too much raises FramingError, after which nothing on the connection can be trusted.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from wyoming.event import Event

from server.errors import APIError, invalid_request, payload_too_large


class FramingError(Exception):
    """The client broke the framing (or the bound): answer `error`, then close."""

    def __init__(self, error: APIError) -> None:
        super().__init__(error.message)
        self.error = error


def _length(header: dict[str, Any], key: str) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FramingError(invalid_request(f"{key} must be a whole number of bytes, not {value!r}"[:200]))
    return value


async def read_event(reader: asyncio.StreamReader, max_bytes: int) -> Event | APIError | None:
    """The next event, an APIError for an event to refuse, or None when the client has gone.
    FramingError when nothing after this can be read."""
    too_large = f"a Wyoming event may hold {max_bytes} bytes (MAX_JSON_BYTES)"
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise FramingError(invalid_request("the connection ended inside an event's header")) from exc
        return None
    except asyncio.LimitOverrunError as exc:
        raise FramingError(payload_too_large(too_large)) from exc
    if len(line) > max_bytes:
        raise FramingError(payload_too_large(too_large))
    if not line.strip():
        return invalid_request("an empty line is not a Wyoming event")
    try:
        header = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise FramingError(invalid_request("an event's header must be one line of JSON")) from exc
    if not isinstance(header, dict):
        raise FramingError(invalid_request("an event's header must be a JSON object"))
    data_length = _length(header, "data_length")
    payload_length = _length(header, "payload_length")
    if len(line) + data_length + payload_length > max_bytes:
        raise FramingError(payload_too_large(too_large))
    data_bytes = await reader.readexactly(data_length) if data_length else b""
    payload = await reader.readexactly(payload_length) if payload_length else None
    # The framing held: whatever is wrong from here on refuses this event alone.
    data = header.get("data", {})
    if data_bytes:
        try:
            extra = json.loads(data_bytes)
        except (ValueError, RecursionError):
            return invalid_request("an event's data must be JSON")
        if not isinstance(extra, dict) or not isinstance(data, dict):
            return invalid_request("an event's data must be a JSON object")
        data = {**data, **extra}
    event_type = header.get("type")
    if not isinstance(event_type, str):
        return invalid_request("an event's type must be a string", param="type")
    if not isinstance(data, dict):
        return invalid_request("an event's data must be a JSON object")
    return Event(type=event_type, data=data, payload=payload)
