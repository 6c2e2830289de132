"""Malformed input on the Wyoming port, many clients at once, as test_front_door_load.py loads
the streaming doors: partial headers, garbage with no newline, events cut inside their data
or payload, lone surrogates, fields of the wrong type, broken and oversized framing, and
connections that never send anything, first beyond the connection cap, then within it.

Every connection is answered or closed within its timeout: each one here ends with the
server closing it, and the last `error` before the close names what closed it
(too_many_connections, request_timeout for WYOMING_EVENT_TIMEOUT, idle_timeout for
WYOMING_IDLE_TIMEOUT, or the framing that could not be read). Nothing is logged as an error,
no connection is left open, and the port still speaks afterwards.

Each client reads until the server closes its connection before the next one opens, so the
connections open at once never pass the clients running at once (the cap is tested on
purpose, with the server's connections held busy)."""

from __future__ import annotations

import concurrent.futures
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from wyoming.event import Event

from tests.support.engine_control import inference_held, wait_until
from tests.support.live_server import LiveServer, RecordCollector, free_port, live_server
from tests.support.wyoming_client import RawReader, raw_connect

CAP = 4  # WYOMING_MAX_CONNECTIONS, and the clients running at once
READ_DEADLINE = 60.0  # stops a test that would hang; every answer comes within a timeout of 1 s


def event(event_type: str, data: dict[str, Any] | None = None) -> bytes:
    header: dict[str, Any] = {"type": event_type, "version": "1.0.0"}
    body = json.dumps(data).encode() if data else b""
    if body:
        header["data_length"] = len(body)
    return json.dumps(header).encode() + b"\n" + body


PING = event("ping", {"text": "after"})
# Refused as one event, the connection going on (it answers the ping, then goes idle).
REFUSED = {
    "surrogate in a header": b'{"type": "ping", "data": {"text": "\\ud800"}}\n',
    "surrogate in text": event("synthesize", {"text": "Hi \ud800."}),
    "surrogate in text_format": event("synthesize", {"text": "Hi.", "text_format": "\udfff"}),
    "surrogate in a key": event("synthesize-start", {"voice": {"name": "Ryan"}, "\ud83d": 1}),
    "voice as a list": event("synthesize", {"text": "Hi.", "voice": [1]}),
    "voice as a string": event("synthesize", {"text": "Hi.", "voice": "alloy"}),
    "voice with a misspelt field": event("synthesize", {"text": "Hi.", "voice": {"nme": "x"}}),
    "voice name as a number": event("synthesize-start", {"voice": {"name": 5}}),
    "text as a number": event("synthesize", {"text": 42}),
    "text_format as an object": event("synthesize", {"text": "Hi.", "text_format": {"a": 1}}),
    "text_format of 100,000 characters": event("synthesize", {"text": "Hi.", "text_format": "x" * 100_000}),
    "type as a number": b'{"type": 42}\n',
    "data as a list": b'{"type": "synthesize", "data": [1, 2]}\n',
}
# Closed after one `error`: the framing is lost, or the event never ends.
CLOSED = {
    "partial header": (b'{"type": "descr', "request_timeout"),
    "garbage with no newline": (bytes(range(256)).replace(b"\n", b"") * 16, "request_timeout"),
    "partial data": (b'{"type": "synthesize", "data_length": 100}\n{"text": "Hi', "request_timeout"),
    "partial payload": (b'{"type": "audio-chunk", "payload_length": 4096}\n' + b"\0" * 100, "request_timeout"),
    "a header that is not JSON": (b"not json at all\n", "invalid_request_error"),
    "a negative length": (b'{"type": "ping", "payload_length": -1}\n', "invalid_request_error"),
    "16 MiB declared": (b'{"type": "synthesize", "payload_length": 16777216}\n', "payload_too_large"),
    "silence": (b"", "idle_timeout"),
}
CASES = [*REFUSED, *CLOSED]


def raw_input(case: str) -> bytes:
    return REFUSED[case] + PING if case in REFUSED else CLOSED[case][0]


def until_closed(port: int, data: bytes) -> list[Event]:
    """Send `data`, then read every event until the server closes the connection."""
    with raw_connect(port, timeout=READ_DEADLINE) as sock:
        if data:
            sock.sendall(data)
        reader = RawReader(sock)
        events = []
        while (answer := reader.read()) is not None:
            events.append(answer)
        return events


def codes(events: list[Event]) -> list[str]:
    return [str(e.data.get("code")) if e.type == "error" else e.type for e in events]


def expected(case: str) -> list[str]:
    if case in REFUSED:
        return ["invalid_request_error", "pong", "idle_timeout"]
    return [CLOSED[case][1]]


@pytest.fixture(scope="module")
def wyoming(custom_voice_dir: Path) -> Iterator[LiveServer]:
    with live_server(
        model_id=str(custom_voice_dir),
        preload_model=True,
        max_new_tokens=8,
        max_queue_depth=2 * CAP,
        send_timeout=5,
        wyoming_port=free_port(),
        wyoming_host="127.0.0.1",
        wyoming_event_timeout=0.5,
        wyoming_idle_timeout=0.5,
        wyoming_max_connections=CAP,
    ) as server:
        yield server


def storm(port: int, inputs: dict[str, bytes]) -> dict[str, list[str]]:
    """Every input on its own connection, CAP at a time; the codes each was answered with."""
    with concurrent.futures.ThreadPoolExecutor(CAP) as pool:
        answers = dict(
            zip(inputs, pool.map(lambda data: codes(until_closed(port, data)), inputs.values()), strict=True)
        )
    return answers


def test_malformed_wyoming_clients_are_each_answered_or_closed(wyoming: LiveServer) -> None:
    port = wyoming.app.state.wyoming.port
    engine = wyoming.engine
    inputs = {case: raw_input(case) for case in CASES}
    with (
        RecordCollector().attached(level=logging.INFO) as log,
        RecordCollector().attached("asyncio", logging.WARNING) as asyncio_log,
    ):
        # Beyond the cap: CAP connections held busy (their jobs wait in the queue, so no
        # timeout closes them), and every malformed client on top of them refused at once.
        held = [raw_connect(port, timeout=READ_DEADLINE) for _ in range(CAP)]
        try:
            with inference_held(wyoming):
                for sock in held:
                    sock.sendall(event("synthesize", {"text": "Held."}))
                wait_until(lambda: engine.depth == CAP)
                beyond = storm(port, inputs)
            for sock in held:  # served once the engine is free, then closed when idle
                answers = RawReader(sock).read_until("no-such-event")
                assert codes(answers)[-2:] == ["audio-stop", "idle_timeout"], codes(answers)
        finally:
            for sock in held:
                sock.close()
        assert beyond == {case: ["too_many_connections"] for case in CASES}

        # Within the cap: each answered as its input deserves.
        within = storm(port, inputs)
        assert within == {case: expected(case) for case in CASES}

        wait_until(lambda: wyoming.app.state.wyoming.connections == 0)
        spoken = until_closed(port, event("synthesize", {"text": "Still speaking."}))
        assert codes(spoken)[-2:] == ["audio-stop", "idle_timeout"], codes(spoken)
    # Each refusal was logged as one, and nothing as an error (no traceback, no
    # "Unhandled exception in client_connected_cb").
    assert [r for r in log.records if r.levelno >= logging.ERROR] == []
    assert asyncio_log.records == []
    refused = [r for r in log.records if r.getMessage() == "request refused"]
    assert len(refused) == len(REFUSED)
    assert {getattr(r, "status", None) for r in refused} == {400}
