"""Reading and writing Wyoming events, with bounds on their size, their time and their strings.

An event is a JSON header line, then `data_length` bytes of JSON data, then `payload_length`
bytes of payload. The `wyoming` package's reader trusts both lengths (it reads, and keeps,
whatever a client declares), reads the header line up to the stream's limit and waits for
it as long as the client likes. Here the header line is read up to MAX_JSON_BYTES (the
stream's limit is set to it), an event whose header, data and payload together would pass
MAX_JSON_BYTES is refused from its header alone, before a byte of its body is read (the same
bound as HTTP bodies and WebSocket messages), and an event begun must be complete within
WYOMING_EVENT_TIMEOUT.

Two kinds of bad input: an event whose framing is intact but whose content is wrong (its data
is not a JSON object, its type is not a string, a string in it is not valid Unicode) is read
in full and comes back as an APIError to answer, the connection going on; a header that is not
Wyoming's framing, declares too much or does not arrive in time raises FramingError, after
which nothing on the connection can be trusted.

Events are written here too (not by the package's writer) so that an event that cannot be
encoded is known before any of its bytes goes out: `encode_event` raises UnencodableEvent.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from wyoming.event import Event

from server.errors import APIError, field_path, invalid_request, payload_too_large, user_value

VERSION = "1.0.0"  # the framing version the `wyoming` package writes


class FramingError(Exception):
    """The client broke the framing (or a bound): answer `error`, then close."""

    def __init__(self, error: APIError) -> None:
        super().__init__(error.message)
        self.error = error


class UnencodableEvent(ValueError):
    """An event this server was about to send cannot be written as Wyoming's framing."""


def timed_out(message: str) -> APIError:
    """408: the client did not finish (or start) what it must within a timeout."""
    return APIError(408, message, "invalid_request_error", None, "request_timeout")


def _length(header: dict[str, Any], key: str) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FramingError(invalid_request(f"{key} must be a whole number of bytes, not {user_value(value)}"))
    return value


def unencodable_string(value: object) -> tuple[list[object], str] | None:
    """The path to the first string in a parsed JSON value (a key or a value) that UTF-8
    cannot encode (a lone surrogate, which JSON's \\ud800 escapes can spell), and that string;
    None when there is none. Walked without recursion: a parsed value may nest deeply."""
    pending: list[tuple[list[object], object]] = [([], value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return path, item
        elif isinstance(item, dict):
            for key, inner in item.items():
                try:
                    key.encode("utf-8")
                except UnicodeEncodeError:
                    return [*path, key], key
                pending.append(([*path, key], inner))
        elif isinstance(item, list):
            pending.extend(([*path, index], inner) for index, inner in enumerate(item))
    return None


def _surrogate_error(where: str, found: tuple[list[object], str]) -> APIError:
    path, text = found
    bad = next(char for char in text if 0xD800 <= ord(char) <= 0xDFFF)
    named = field_path(path) if path else where
    return invalid_request(
        f"{named} holds a lone surrogate (\\u{ord(bad):04x}): strings must be valid Unicode, which UTF-8 can encode",
        param=field_path(path[:1]) if path else None,
    )


async def read_event(
    reader: asyncio.StreamReader, first: bytes, max_bytes: int, event_timeout: float
) -> Event | APIError:
    """The event whose first byte (`first`) has been read, or an APIError for an event to
    refuse. FramingError when nothing after this can be read: broken framing, a bound passed,
    or the rest of the event not read within `event_timeout` seconds."""
    try:
        async with asyncio.timeout(event_timeout):
            return await _read_rest(reader, first, max_bytes)
    except TimeoutError:
        raise FramingError(
            timed_out(f"an event must be complete within {event_timeout:g} s of its first byte (WYOMING_EVENT_TIMEOUT)")
        ) from None


async def _read_rest(reader: asyncio.StreamReader, first: bytes, max_bytes: int) -> Event | APIError:
    too_large = f"a Wyoming event may hold {max_bytes} bytes (MAX_JSON_BYTES)"
    line = first
    if first != b"\n":
        try:
            line += await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            raise FramingError(invalid_request("the connection ended inside an event's header")) from exc
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
    try:
        data_bytes = await reader.readexactly(data_length) if data_length else b""
        payload = await reader.readexactly(payload_length) if payload_length else None
    except asyncio.IncompleteReadError as exc:
        raise FramingError(invalid_request("the connection ended inside an event's data or payload")) from exc
    # The framing held: whatever is wrong from here on refuses this event alone.
    return _event(header, data_bytes, payload)


def _event(header: dict[str, Any], data_bytes: bytes, payload: bytes | None) -> Event | APIError:
    found = unencodable_string(header)
    if found is not None:
        path, text = found
        # The header's own `data` holds the event's fields, named as in the data.
        return _surrogate_error("the data", (path[1:], text) if path[:1] == ["data"] else found)
    data = header.get("data", {})
    if data_bytes:
        try:
            extra = json.loads(data_bytes)
        except (ValueError, RecursionError):
            return invalid_request("an event's data must be JSON")
        if not isinstance(extra, dict) or not isinstance(data, dict):
            return invalid_request("an event's data must be a JSON object")
        found = unencodable_string(extra)
        if found is not None:
            return _surrogate_error("the data", found)
        data = {**data, **extra}
    event_type = header.get("type")
    if not isinstance(event_type, str):
        return invalid_request("an event's type must be a string", param="type")
    if not isinstance(data, dict):
        return invalid_request("an event's data must be a JSON object")
    return Event(type=event_type, data=data, payload=payload)


def encode_event(event: Event) -> bytes:
    """The event in Wyoming's framing, as the `wyoming` package writes it; UnencodableEvent
    when its data cannot be written as UTF-8 JSON."""
    header: dict[str, Any] = {"type": event.type, "version": VERSION}
    try:
        data = json.dumps(event.data, ensure_ascii=False).encode("utf-8") if event.data else b""
        if data:
            header["data_length"] = len(data)
        if event.payload:
            header["payload_length"] = len(event.payload)
        line = json.dumps(header, ensure_ascii=False).encode("utf-8")
    except (ValueError, TypeError, RecursionError) as exc:  # UnicodeEncodeError is a ValueError
        raise UnencodableEvent(f"a {event.type} event could not be encoded ({type(exc).__name__})") from exc
    return line + b"\n" + data + (event.payload or b"")
