"""The Wyoming port against careless and hostile clients, over raw sockets: strings that UTF-8
cannot encode, client strings echoed in errors, fields of the wrong shape, events that never
end, connections that never speak and more connections than the port takes. Each is answered
with an `error` event (and, where the framing is lost or the connection is over a limit,
closed), never with a traceback, a 500 or silence."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from wyoming.event import Event

from server.wyoming.connection import ConnectionContext, WyomingConnection
from tests.support.engine_control import inference_held, wait_until
from tests.support.live_server import LiveServer, RecordCollector
from tests.support.wyoming_client import RawReader, encode_event, raw_connect, wyoming_live_server

# Every answer here comes at once or after a timeout of at most a second; this only stops a
# test that would otherwise hang.
READ_DEADLINE = 60.0
PING = encode_event(Event(type="ping", data={"text": "after"}))


def event(event_type: str, data: dict[str, Any] | None = None) -> bytes:
    """An event in Wyoming's framing, its JSON escaping non-ASCII (so a lone surrogate goes as
    the six characters \\ud800, as a JSON encoder writes it)."""
    header: dict[str, Any] = {"type": event_type, "version": "1.0.0"}
    body = json.dumps(data).encode() if data else b""
    if body:
        header["data_length"] = len(body)
    return json.dumps(header).encode() + b"\n" + body


def port_of(server: LiveServer) -> int:
    return int(server.app.state.wyoming.port)


def exchange(server: LiveServer, raw: bytes) -> list[Event]:
    """Send `raw` and a ping on a fresh connection; the answers up to the pong (or the close)."""
    with raw_connect(port_of(server), timeout=READ_DEADLINE) as sock:
        sock.sendall(raw + PING)
        return RawReader(sock).read_until("pong")


def refused(answers: list[Event]) -> dict[str, Any]:
    """The one error `answers` hold before the pong (the connection went on); its data."""
    assert [e.type for e in answers] == ["error", "pong"], answers
    return dict(answers[0].data)


def ends_with_close(sock: socket.socket, reader: RawReader | None = None) -> list[Event]:
    """Every event until the server closes the connection."""
    reader = reader or RawReader(sock)
    events = []
    while (answer := reader.read()) is not None:
        events.append(answer)
    return events


@pytest.fixture(scope="module")
def wyoming(custom_voice_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with wyoming_live_server(custom_voice_dir, voices_dir=tmp_path_factory.mktemp("voices")) as server:
        yield server


# Defect 1: a lone surrogate is refused when the event is read, wherever it is.
SURROGATES = {
    "ping text": b'{"type": "ping", "data": {"text": "\\ud800"}}\n',
    "text_format": event("synthesize", {"text": "Hi.", "text_format": "\ud800"}),
    "voice name": event("synthesize", {"text": "Hi.", "voice": {"name": "Ry\udfffan"}}),
    "a key": event("synthesize", {"text": "Hi.", "\udc80": 1}),
    "the type": b'{"type": "\\ud800x"}\n',
    "stream chunk": event("synthesize-chunk", {"text": "half \ud83d"}),
}


@pytest.mark.parametrize("where", sorted(SURROGATES))
def test_a_lone_surrogate_is_refused_when_read(wyoming: LiveServer, where: str) -> None:
    with RecordCollector().attached("asyncio", logging.WARNING) as asyncio_log:
        error = refused(exchange(wyoming, SURROGATES[where]))
    assert error["code"] == "invalid_request_error"
    assert "UTF-8" in error["text"] and "surrogate" in error["text"], error
    error["text"].encode("utf-8")  # the answer itself is valid UTF-8
    assert asyncio_log.records == []  # no "Unhandled exception in client_connected_cb"


def test_an_answer_that_cannot_be_encoded_is_answered_by_an_error() -> None:
    """Whatever string reaches an answer, the package's writer never fails on the connection:
    an event that cannot be encoded is answered by an `error` instead, over a real socket."""

    async def answer() -> list[Event]:
        ours, theirs = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=ours)
        context = ConnectionContext(cast(Any, None), cast(Any, None), None, send_timeout=30, version="test")
        connection = WyomingConnection(reader, writer, context, "wy-test")
        await connection.send(Event(type="pong", data={"text": "\ud800"}))
        await connection.send(Event(type="pong", data={"text": "fine"}))
        writer.close()
        await writer.wait_closed()
        with theirs:
            theirs.settimeout(READ_DEADLINE)
            return ends_with_close(theirs)

    with RecordCollector().attached(level=logging.ERROR) as errors:
        first, second = asyncio.run(answer())
    assert first.type == "error" and first.data["code"] == "internal_error", first
    assert "could not be encoded" in first.data["text"]
    assert (second.type, second.data) == ("pong", {"text": "fine"})
    # Logged once, as the server's own error (no traceback from the package's writer).
    assert [r.getMessage() for r in errors.records] == ["wyoming answer not encodable"]


def test_a_lone_surrogate_in_text_is_a_400_not_a_failed_synthesis(
    wyoming: LiveServer, request_log: RecordCollector
) -> None:
    error = refused(exchange(wyoming, event("synthesize", {"text": "Hi \ud800 there."})))
    assert error["code"] == "invalid_request_error", error
    assert "text" in error["text"]
    [line] = [r for r in request_log.records if r.getMessage() == "request refused"]
    assert (line.status, line.param) == (400, "text")  # type: ignore[attr-defined]
    assert request_log.requests() == []  # nothing reached synthesis, nothing logged as 500


# Defect 5: a client string is quoted cut to 64 characters and escaped in every error.
ECHOED = {
    "text_format": event("synthesize", {"text": "Hi.", "text_format": "x" * 100_000}),
    "voice key": event("synthesize", {"text": "Hi.", "voice": {"n" * 100_000: "x"}}),
    "voice name": event("synthesize", {"text": "Hi.", "voice": {"name": "\x1b[2J" + "y" * 100_000}}),
    "language": event("synthesize", {"text": "Hi.", "voice": {"name": "Ryan", "language": "z" * 100_000}}),
}


@pytest.mark.parametrize("field", sorted(ECHOED))
def test_client_strings_in_errors_are_cut_and_escaped(wyoming: LiveServer, field: str) -> None:
    error = refused(exchange(wyoming, ECHOED[field]))
    assert len(error["text"]) < 400, len(error["text"])
    assert "\x1b" not in error["text"]


def test_a_length_that_is_not_a_number_is_quoted_cut(wyoming: LiveServer) -> None:
    header = json.dumps({"type": "ping", "data_length": "9" * 100_000}).encode() + b"\n"
    with raw_connect(port_of(wyoming), timeout=READ_DEADLINE) as sock:
        sock.sendall(header)
        [answer] = ends_with_close(sock)
    assert answer.type == "error" and len(answer.data["text"]) < 400, answer


# Defect 6: fields of the wrong shape are refused naming the field, never dropped.
WRONG_SHAPES = {
    "voice": [{"voice": [1]}, {"voice": "alloy"}, {"voice": 7}],
    "voice.nme": [{"voice": {"nme": "x"}}],
    "voice.name": [{"voice": {"name": 5}}, {"voice": {"name": ["Ryan"]}}],
    "voice.language": [{"voice": {"name": "Ryan", "language": {"code": "de"}}}],
    "voice.speaker": [{"voice": {"name": "Ryan", "speaker": 2}}],
    "text_format": [{"text_format": 5}, {"text_format": "ssml"}],
    "context": [{"context": "not an object"}],
}


@pytest.mark.parametrize(
    ("field", "fields"), [(field, fields) for field, cases in WRONG_SHAPES.items() for fields in cases]
)
@pytest.mark.parametrize("kind", ["synthesize", "synthesize-start"])
def test_a_field_of_the_wrong_shape_is_refused_by_name(
    wyoming: LiveServer, field: str, fields: dict[str, Any], kind: str
) -> None:
    data = {"text": "Hi.", **fields} if kind == "synthesize" else fields
    answers = exchange(wyoming, event(kind, data))
    error = refused(answers)
    assert error["code"] == "invalid_request_error"
    assert error["text"].startswith(field.split(".")[0]), (field, error)
    if "." in field:
        assert field.split(".")[1] in error["text"], error


def test_name_and_language_are_both_honoured(wyoming: LiveServer, request_log: RecordCollector) -> None:
    """The package's reader keeps the name and drops the language beside it; this server
    speaks both."""
    with raw_connect(port_of(wyoming), timeout=READ_DEADLINE) as sock:
        sock.sendall(event("synthesize", {"text": "Guten Tag.", "voice": {"name": "Ryan", "language": "de"}}))
        assert RawReader(sock).read_until("audio-stop")[-1].type == "audio-stop"
    [line] = request_log.wait_for_requests(1, endpoint="wyoming")
    assert (line["voice"], line["language"]) == ("Ryan", "German")


def test_a_refused_stream_start_still_answers_its_stop(wyoming: LiveServer) -> None:
    with raw_connect(port_of(wyoming), timeout=READ_DEADLINE) as sock:
        sock.sendall(
            event("synthesize-start", {"voice": "alloy"})
            + event("synthesize-chunk", {"text": "Dropped. Quite dropped."})
            + event("synthesize-stop")
        )
        answers = RawReader(sock).read_until("synthesize-stopped")
    assert [e.type for e in answers] == ["error", "synthesize-stopped"], answers
    assert answers[0].data["text"].startswith("voice")


# Defect 4: events that never end, connections that never speak, more connections than allowed.
TIMEOUTS = {"wyoming_event_timeout": 0.5, "wyoming_idle_timeout": 0.5}


@pytest.fixture(scope="module")
def impatient(custom_voice_dir: Path) -> Iterator[LiveServer]:
    with wyoming_live_server(custom_voice_dir, **TIMEOUTS) as server:
        yield server


UNFINISHED = {
    "partial header": b'{"type": "descr',
    "garbage with no newline": bytes(range(256)).replace(b"\n", b"") * 16,
    "partial data": b'{"type": "synthesize", "data_length": 100}\n{"text": "Hi',
    "partial payload": b'{"type": "audio-chunk", "payload_length": 4096}\n' + b"\0" * 100,
}


@pytest.mark.parametrize("kind", sorted(UNFINISHED))
def test_an_event_not_finished_in_time_is_answered_and_closed(impatient: LiveServer, kind: str) -> None:
    with raw_connect(port_of(impatient), timeout=READ_DEADLINE) as sock:
        sock.sendall(UNFINISHED[kind])
        answers = ends_with_close(sock)
    [answer] = answers
    assert answer.type == "error" and answer.data["code"] == "request_timeout", answer
    assert "WYOMING_EVENT_TIMEOUT" in answer.data["text"]


@pytest.mark.parametrize("spoke_first", [False, True])
def test_a_silent_connection_is_answered_and_closed(impatient: LiveServer, spoke_first: bool) -> None:
    with raw_connect(port_of(impatient), timeout=READ_DEADLINE) as sock:
        if spoke_first:
            sock.sendall(PING)
        answers = ends_with_close(sock)
    assert [e.type for e in answers] == ["pong", "error"] if spoke_first else ["error"], answers
    assert answers[-1].data["code"] == "idle_timeout"
    assert "WYOMING_IDLE_TIMEOUT" in answers[-1].data["text"]


def test_a_connection_waiting_for_its_answer_is_not_idle(impatient: LiveServer) -> None:
    """The idle timeout counts only while nothing is being answered: a synthesis that waits
    in the queue far longer than it is still spoken."""
    with raw_connect(port_of(impatient), timeout=READ_DEADLINE) as sock:
        with inference_held(impatient):
            sock.sendall(event("synthesize", {"text": "Wait for it."}))
            wait_until(lambda: impatient.engine.depth == 1)
            # Many idle timeouts pass while the job waits; the connection stays.
            sock.settimeout(8 * TIMEOUTS["wyoming_idle_timeout"])
            with pytest.raises(TimeoutError):
                sock.recv(1, socket.MSG_PEEK)
            sock.settimeout(READ_DEADLINE)
        reader = RawReader(sock)
        answers = reader.read_until("audio-stop")
        assert answers[-1].type == "audio-stop", answers
        # Once answered, it is idle again.
        assert [e.type for e in ends_with_close(sock, reader)] == ["error"]


def test_connections_beyond_the_cap_are_answered_and_closed(custom_voice_dir: Path) -> None:
    with wyoming_live_server(custom_voice_dir, wyoming_max_connections=2) as server:
        port = port_of(server)
        held = [raw_connect(port, timeout=READ_DEADLINE) for _ in range(2)]
        try:
            for sock in held:  # both accepted and counted
                sock.sendall(PING)
                assert RawReader(sock).read().type == "pong"  # type: ignore[union-attr]
            with raw_connect(port, timeout=READ_DEADLINE) as extra:
                [answer] = ends_with_close(extra)
            assert answer.type == "error" and answer.data["code"] == "too_many_connections", answer
            assert "WYOMING_MAX_CONNECTIONS" in answer.data["text"]
            held.pop().close()
            wait_until(lambda: server.app.state.wyoming.connections == 1)
            assert [e.type for e in exchange(server, b"")] == ["pong"]
        finally:
            for sock in held:
                sock.close()
