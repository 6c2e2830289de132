"""Load x faults x fuzz on the streaming front doors (the WebSocket and the Wyoming port), as
test_mixed_load.py does for HTTP: polite clients, pipelining clients, text streams, clients
that vanish mid-utterance, readers that stall, malformed messages and messages far over the
limit, all at once against one server with a tiny REQUEST_TIMEOUT and SEND_TIMEOUT. Nothing
hangs, nothing logs an error, every malformed message gets an error event on a connection
that stays usable, the queue returns to 0, memory stays bounded and the server still speaks.

The scenarios drive a `Door`: how a client of one front door speaks, vanishes, stalls and
misbehaves. Another front door joins the same load by adding its own Door subclass (with
the settings its listener needs) and an entry in `DOORS`."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import random
import re
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from wyoming.event import Event

from tests.support import rawws
from tests.support.live_server import LiveServer, RecordCollector, free_port, live_server
from tests.support.ws import RECEIVE_TIMEOUT, receive_until_end, send, ws_connect
from tests.support.wyoming_client import RawReader, encode_event, narrow_send_buffer, raw_connect

JOBS = 80
CONCURRENCY = 16
MIB = 1024 * 1024
TEXTS = ("Hello there.", "One sentence. And another one.", "A first line, then more. Then a last one here.")
LONG = " ".join(TEXTS * 4)
# Kinds of client, and how often each comes.
KINDS = {"speak": 4, "pipeline": 2, "text": 2, "leave": 3, "malformed": 2, "oversized": 1}


def rss_bytes() -> int:
    match = re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text())
    assert match is not None
    return int(match.group(1)) * 1024


def malformed_messages(rng: random.Random) -> list[tuple[str | bytes, bool]]:
    """Messages no valid client sends (not JSON, not an object, wrong types), each with
    whether it must be refused: a field's odd value may happen to be one it accepts."""
    valid: dict[str, Any] = {"input": "Hi.", "voice": "alloy"}
    odd_values: list[Any] = [None, [], {}, ["delta"], {"a": 1}, -1, 10**30, 1e308, "", "x" * 5000, True]
    fixed: list[str | bytes] = [
        "not json",
        "[1, 2, 3]",
        "42",
        '"a string"',
        "null",
        "[" * 5000 + "]" * 5000,  # deeper than any parser should recurse
        json.dumps({"type": ["delta"], "text": "x"}),
        json.dumps({"type": {"a": 1}}),
        json.dumps({"type": "delta", "text": "no stream open"}),
        json.dumps({"type": "flush"}),
        b"\x00\xff binary",
    ]
    fields = ["input", "voice", "model", "speed", "sample_rate", "response_format", "seed", "type", "max_new_tokens"]
    mutated = [(json.dumps({**valid, rng.choice(fields): rng.choice(odd_values)}), False) for _ in range(4)]
    return [(message, True) for message in rng.sample(fixed, 3)] + mutated


class Door:
    """A front door under load; a subclass says how its clients behave."""

    name = "door"

    def __init__(self, server: LiveServer) -> None:
        self.server = server

    @staticmethod
    def server_settings() -> dict[str, Any]:
        """What the live server needs to open this door."""
        return {}

    def malformed_messages(self, rng: random.Random) -> list[tuple[str | bytes, bool]]:
        """This door's malformed messages, each with whether it must be refused."""
        return malformed_messages(rng)

    def speak(self, texts: list[str], request_id: str) -> list[str]:
        """Send every text at once, read every answer; the outcome of each ("done", or the
        error's code)."""
        raise NotImplementedError

    def text_stream(self, text: str, request_id: str) -> str:
        raise NotImplementedError

    def leave(self, request_id: str) -> str:
        """Start a long utterance, take its first audio and vanish."""
        raise NotImplementedError

    def malformed(self, messages: list[tuple[str | bytes, bool]]) -> str:
        """Send each message; each is answered (with an error where it must be refused) and
        the client is still served afterwards."""
        raise NotImplementedError

    def oversized(self) -> str:
        """Send a frame far over the limit; it must be refused without being read."""
        raise NotImplementedError

    def stall(self, request_id: str) -> socket.socket:
        """Start a long utterance and never read again."""
        raise NotImplementedError


class WebSocketDoor(Door):
    name = "websocket"

    def speak(self, texts: list[str], request_id: str) -> list[str]:
        with ws_connect(self.server, additional_headers={"X-Request-ID": request_id}) as ws:
            for text in texts:
                send(ws, {"input": text, "voice": "alloy"})
            answers = [receive_until_end(ws).last for _ in texts]
        return ["done" if a["event"] == "done" else str(a["code"]) for a in answers]

    def text_stream(self, text: str, request_id: str) -> str:
        with ws_connect(self.server, additional_headers={"X-Request-ID": request_id}) as ws:
            send(ws, {"type": "start", "voice": "Ryan"})
            for word in text.split(" "):
                send(ws, {"type": "delta", "text": word + " "})
            send(ws, {"type": "flush"})
            last = receive_until_end(ws).last
        return "done" if last["event"] == "done" else str(last["code"])

    def leave(self, request_id: str) -> str:
        with ws_connect(self.server, additional_headers={"X-Request-ID": request_id}) as ws:
            send(ws, {"input": LONG, "voice": "alloy"})
            message = ws.recv(timeout=RECEIVE_TIMEOUT)
        # Gone after the first audio; or refused before any (a full queue).
        return "gone" if isinstance(message, bytes) else str(json.loads(message)["code"])

    def malformed(self, messages: list[tuple[str | bytes, bool]]) -> str:
        with ws_connect(self.server) as ws:
            for message, refused in messages:
                ws.send(message)
                last = receive_until_end(ws).last
                assert last["event"] == "error" or not refused, (message, last)
            send(ws, {"input": "Still usable.", "voice": "alloy"})
            last = receive_until_end(ws).last
        return "usable" if last["event"] == "done" else str(last["code"])

    def oversized(self) -> str:
        with rawws.handshake(self.server.port) as sock:
            # 15.9 MiB declared, 1 MiB of it sent: refused from the header (the server may
            # close while the payload is still going out).
            with contextlib.suppress(OSError):
                sock.sendall(rawws.frame_header(int(15.9 * MIB)) + b"x" * MIB)
            code, _ = rawws.read_close(sock, timeout=30)
        return str(code)

    def stall(self, request_id: str) -> socket.socket:
        sock = rawws.handshake(self.server.port, receive_buffer=4096, headers={"X-Request-ID": request_id})
        rawws.send_json(sock, {"input": LONG, "voice": "alloy", "sample_rate": 48000})
        return sock


def wyoming_event(event_type: str, data: dict[str, Any] | None = None) -> bytes:
    return encode_event(Event(type=event_type, data=data or {}))


def _header(header: dict[str, Any], body: bytes = b"") -> bytes:
    return json.dumps(header).encode() + b"\n" + body


def wyoming_malformed(rng: random.Random) -> list[tuple[str | bytes, bool]]:
    """Wyoming events no valid client sends, their framing intact (a header line, then the
    bytes it declares), each with whether it must be refused."""
    odd_values: list[Any] = [None, [], {}, ["x"], {"a": 1}, -1, 10**30, 1e308, "", "x" * 5000, True]
    fixed: list[str | bytes] = [
        _header({"type": 42}),
        _header({"type": ["synthesize"]}),
        _header({"type": "synthesize", "data": [1, 2]}),
        _header({"type": "synthesize", "data_length": 6}, b"not js"),
        _header({"type": "synthesize", "data_length": 2}, b"[]"),
        _header({"type": "synthesize", "data_length": 10_000}, b"[" * 5000 + b"]" * 5000),  # deep
        b"\n",
        wyoming_event("synthesize", {"text": 42}),
        wyoming_event("synthesize", {"voice": {"name": "Ryan"}}),  # no text
        wyoming_event("synthesize", {"text": "   "}),
        wyoming_event("synthesize", {"text": "x" * 5000}),  # over MAX_INPUT_CHARS
        wyoming_event("synthesize", {"text": "Hi.", "voice": {"name": "nobody"}}),
        wyoming_event("synthesize-chunk", {"text": "no stream open"}),
        wyoming_event("synthesize-stop"),
    ]
    mutated: list[tuple[str | bytes, bool]] = []
    for _ in range(4):
        data: dict[str, Any] = {"text": "Hi.", "voice": {"name": "Ryan", "language": "en"}}
        field = rng.choice(["text", "voice", "text_format", "voice.name", "voice.language", "voice.speaker"])
        if field.startswith("voice."):
            data["voice"][field.split(".")[1]] = rng.choice(odd_values)
        else:
            data[field] = rng.choice(odd_values)
        mutated.append((wyoming_event("synthesize", data), False))
    # An event of no domain this server has is dropped, as Wyoming servers do: not refused.
    mutated.append((wyoming_event("no-such-event", {"a": 1}), False))
    return [(message, True) for message in rng.sample(fixed, 4)] + mutated


# A header line that is not JSON: whatever bytes it meant to declare, no one can tell.
BROKEN_HEADER = b"not json at all\n"


class WyomingDoor(Door):
    """Raw sockets speaking Wyoming's framing, so that they can break it. Wyoming carries no
    request id, so `request_id` names nothing here."""

    name = "wyoming"

    def __init__(self, server: LiveServer) -> None:
        super().__init__(server)
        self.port = server.app.state.wyoming.port
        narrow_send_buffer(server)  # as the HTTP listener's send_buffer=4096

    @staticmethod
    def server_settings() -> dict[str, Any]:
        return {"wyoming_port": free_port(), "wyoming_host": "127.0.0.1"}

    def malformed_messages(self, rng: random.Random) -> list[tuple[str | bytes, bool]]:
        return wyoming_malformed(rng)

    @staticmethod
    def _outcome(reader: RawReader) -> str:
        """One synthesis answered: "done" at audio-stop, or the error's code (an error may
        come after audio-start, when synthesis fails midway)."""
        while (event := reader.read()) is not None:
            if event.type == "audio-stop":
                return "done"
            if event.type == "error":
                return str(event.data.get("code"))
        return "closed"

    def speak(self, texts: list[str], request_id: str) -> list[str]:
        with raw_connect(self.port) as sock:
            sock.sendall(b"".join(wyoming_event("synthesize", {"text": text}) for text in texts))
            reader = RawReader(sock)
            return [self._outcome(reader) for _ in texts]

    def text_stream(self, text: str, request_id: str) -> str:
        with raw_connect(self.port) as sock:
            events = [wyoming_event("synthesize-start", {"voice": {"name": "Ryan"}})]
            events += [wyoming_event("synthesize-chunk", {"text": word + " "}) for word in text.split(" ")]
            sock.sendall(b"".join([*events, wyoming_event("synthesize-stop")]))
            answers = RawReader(sock).read_until("synthesize-stopped")
        if not answers or answers[-1].type != "synthesize-stopped":
            return "closed"
        errors = [str(event.data.get("code")) for event in answers if event.type == "error"]
        return errors[0] if errors else "done"

    def leave(self, request_id: str) -> str:
        # A small window, so the server cannot have sent it all before the client goes.
        with raw_connect(self.port, receive_buffer=4096) as sock:
            sock.sendall(wyoming_event("synthesize", {"text": LONG}))
            reader = RawReader(sock)
            first = reader.read()
            if first is not None and first.type == "audio-start":
                first = reader.read()
        # Gone after the first audio; or refused before any (a full queue).
        if first is not None and first.type == "audio-chunk":
            return "gone"
        return str(first.data.get("code")) if first is not None else "closed"

    def malformed(self, messages: list[tuple[str | bytes, bool]]) -> str:
        ping = wyoming_event("ping", {"text": "next"})
        with raw_connect(self.port) as sock:
            reader = RawReader(sock)
            for message, refused in messages:
                assert isinstance(message, bytes)
                sock.sendall(message + ping)
                answers = reader.read_until("pong")
                assert answers and answers[-1].type == "pong", (message, answers)
                assert any(event.type == "error" for event in answers) or not refused, (message, answers)
            sock.sendall(wyoming_event("synthesize", {"text": "Still usable."}))
            outcome = self._outcome(reader)
            if outcome != "done":
                return outcome
            # A header that is not Wyoming's framing: nothing after it can be read, so it is
            # answered and the connection ends; a fresh one is still served.
            sock.sendall(BROKEN_HEADER)
            answer = reader.read()
            assert answer is not None and answer.type == "error", answer
            assert reader.read() is None
        outcome = self.speak(["Still serving."], "")[0]
        return "usable" if outcome == "done" else outcome

    def oversized(self) -> str:
        with raw_connect(self.port) as sock:
            # 15.9 MiB of payload declared, 1 KiB of it sent: refused from the header alone
            # (the connection then ends).
            sock.sendall(_header({"type": "synthesize", "payload_length": int(15.9 * MIB)}, b"x" * 1024))
            reader = RawReader(sock)
            answer = reader.read()
            closed = reader.read() is None
        if answer is None or answer.type != "error" or not closed:
            return f"not refused: {answer}"
        return str(answer.data.get("code"))

    def stall(self, request_id: str) -> socket.socket:
        sock = raw_connect(self.port, receive_buffer=4096)
        sock.sendall(wyoming_event("synthesize", {"text": LONG}))
        return sock


DOORS: dict[str, type[Door]] = {"websocket": WebSocketDoor, "wyoming": WyomingDoor}


def play(door: Door, kind: str, index: int, rng: random.Random) -> list[str]:
    request_id = f"{door.name}-load-{index}"
    if kind == "speak":
        return door.speak([rng.choice(TEXTS)], request_id)
    if kind == "pipeline":
        return door.speak([rng.choice(TEXTS) for _ in range(6)], request_id)
    if kind == "text":
        return [door.text_stream(" ".join(TEXTS), request_id)]
    if kind == "leave":
        return [door.leave(request_id)]
    if kind == "malformed":
        return [door.malformed(door.malformed_messages(rng))]
    return [door.oversized()]


@pytest.fixture(params=sorted(DOORS))
def door(request: pytest.FixtureRequest, custom_voice_dir: Path) -> Iterator[Door]:
    door_class = DOORS[request.param]
    with live_server(
        send_buffer=4096,
        model_id=str(custom_voice_dir),
        preload_model=True,
        request_timeout=8,
        send_timeout=2,
        max_new_tokens=8,
        **door_class.server_settings(),
    ) as server:
        yield door_class(server)


@pytest.mark.slow
def test_load_with_faults_and_fuzz(door: Door) -> None:
    rng = random.Random(27)
    jobs = [(rng.choices(list(KINDS), weights=list(KINDS.values()))[0], i) for i in range(JOBS)]
    seeds = [rng.randrange(2**32) for _ in jobs]
    server = door.server
    door.speak(["Warm up."], f"{door.name}-warmup")
    before = rss_bytes()
    with (
        RecordCollector().attached(level=logging.INFO) as log,
        RecordCollector().attached("uvicorn.error", logging.ERROR) as server_errors,
        RecordCollector().attached("asyncio", logging.WARNING) as asyncio_log,
    ):
        stalled = [door.stall(f"{door.name}-stall-{i}") for i in range(4)]
        with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
            outcomes = list(
                pool.map(lambda job: (job[0], play(door, job[0], job[1], random.Random(seeds[job[1]]))), jobs)
            )
        deadline = time.monotonic() + 60
        while server.health()["queue_depth"] != 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.health()["queue_depth"] == 0  # the stalled sockets are still open
        for sock in stalled:
            sock.close()
        assert door.speak(["Still here."], f"{door.name}-after") == ["done"]
        growth = rss_bytes() - before
    counts = Counter((kind, outcome) for kind, results in outcomes for outcome in results)
    print(f"{door.name} load: outcomes {dict(counts)}; resident memory grew {growth / MIB:.0f} MiB")
    allowed = {
        "speak": {"done", "server_busy", "timeout"},
        "pipeline": {"done", "server_busy", "timeout"},
        "text": {"done", "server_busy", "timeout"},
        "leave": {"gone", "server_busy", "timeout"},
        "malformed": {"usable", "server_busy", "timeout"},
        # The WebSocket closes with 1009 (message too big); Wyoming has no close codes, so
        # it answers an `error` event with the HTTP code for a body too large, then closes.
        "oversized": {"1009"} if door.name == "websocket" else {"payload_too_large"},
    }
    for (kind, outcome), _ in counts.items():
        assert outcome in allowed[kind], (kind, outcome)
    assert counts[("speak", "done")] > 0 and counts[("leave", "gone")] > 0
    statuses = Counter(line["status"] for line in log.requests())
    assert set(statuses) <= {200, 499, 503, 504}, statuses
    assert statuses[499] >= counts[("leave", "gone")]  # every client that left was logged as gone
    assert server_errors.records == []  # no traceback, no "Exception in ASGI application"
    assert [r for r in asyncio_log.records if "destroyed" in r.getMessage()] == []
    # Nor anything the server logs as an error (a Wyoming connection's task has no ASGI
    # server around it to log its failure under uvicorn.error).
    assert [r for r in log.records if r.levelno >= logging.ERROR] == []
    assert [r for r in asyncio_log.records if r.levelno >= logging.ERROR] == []
    # Frames far over the limit were refused unread: nothing like their 15.9 MiB each stayed.
    assert growth < 256 * MIB, growth
