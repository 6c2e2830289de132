"""Bodies are bounded while they are read, before anything parses them, and the API key is
checked before a byte of the body is read. Raw sockets show how much the server took."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.live_server import LiveServer, live_server
from tests.support.rawhttp import connect, read_status, request_head, send_until_answered

MIB = 1024 * 1024
KEY = "sk-gate-test"
SPEECH = {"model": "tts-1", "voice": "alloy", "input": "Hi.", "response_format": "pcm"}


def chunk_of(size: int) -> bytes:
    return f"{size:x}\r\n".encode() + b"x" * size + b"\r\n"


def test_chunked_upload_without_length_stops_at_the_limit(hardened: LiveServer) -> None:
    boundary = "b0undary"
    head = request_head(
        "POST",
        "/v1/audio/speech/clone",
        {"Content-Type": f"multipart/form-data; boundary={boundary}", "Transfer-Encoding": "chunked"},
    )
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'.encode()
    with connect(hardened.port) as sock:
        sock.sendall(head + f"{len(part):x}\r\n".encode() + part + b"\r\n")
        status, sent = send_until_answered(sock, lambda: chunk_of(256 * 1024), limit=100 * MIB)
    assert status == 413
    # Refused once the 10 MiB limit was passed, not after the whole 100 MiB.
    limit = hardened.settings.max_upload_bytes
    assert limit < sent < limit + 16 * MIB


def test_declared_huge_json_is_refused_before_it_is_sent(hardened: LiveServer) -> None:
    head = request_head(
        "POST", "/v1/audio/speech", {"Content-Type": "application/json", "Content-Length": str(100 * MIB)}
    )
    with connect(hardened.port) as sock:
        sock.sendall(head)
        assert read_status(sock) == 413


def test_chunked_json_past_the_limit_is_refused_while_reading(hardened: LiveServer) -> None:
    head = request_head(
        "POST", "/v1/audio/speech", {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    )
    with connect(hardened.port) as sock:
        sock.sendall(head + chunk_of(1024)[:-2].replace(b"x" * 1024, b'{"input": "' + b"x" * 1013) + b"\r\n")
        status, sent = send_until_answered(sock, lambda: chunk_of(64 * 1024), limit=100 * MIB)
    assert status == 413
    assert sent < 8 * MIB


def test_a_json_body_under_the_limit_with_extra_fields_still_works(hardened: LiveServer) -> None:
    with hardened.client() as client:
        big = client.post("/v1/audio/speech", json={**SPEECH, "padding": "x" * (300 * 1024)})
        fine = client.post("/v1/audio/speech", json={**SPEECH, "padding": "x" * (100 * 1024)})
    assert big.status_code == 413
    assert big.json()["error"]["code"] == "payload_too_large"
    assert fine.status_code == 200


@pytest.fixture(scope="module")
def keyed(custom_voice_dir: Path) -> Iterator[LiveServer]:
    with live_server(model_id=str(custom_voice_dir), api_keys=KEY) as server:
        yield server


@pytest.mark.parametrize("content_type", ["application/json", "multipart/form-data; boundary=x"])
def test_the_key_is_checked_before_the_body_is_read(keyed: LiveServer, content_type: str) -> None:
    head = request_head("POST", "/v1/audio/speech", {"Content-Type": content_type, "Content-Length": str(5 * MIB)})
    with connect(keyed.port) as sock:
        sock.sendall(head)  # the body never follows: the answer must not wait for it
        assert read_status(sock) == 401


@pytest.mark.parametrize("path", ["/v1/audio/speech", "/cache/clear"])
def test_every_keyed_route_answers_401_before_reading_a_declared_body(keyed: LiveServer, path: str) -> None:
    head = request_head("POST", path, {"Content-Type": "application/json", "Content-Length": "200000"})
    with connect(keyed.port) as sock:
        sock.sendall(head + b"{" + b" " * 999)  # 1,000 of the 200,000 bytes declared; the rest never comes
        assert read_status(sock, timeout=30) == 401


def test_non_utf8_json_is_415(hardened: LiveServer) -> None:
    with hardened.client() as client:
        response = client.post(
            "/v1/audio/speech",
            content=b'{"model": "tts-1", "voice": "alloy", "input": "Hi."}',
            headers={"Content-Type": "application/json; charset=utf-16"},
        )
        utf8 = client.post(
            "/v1/audio/speech",
            content=b'{"model": "tts-1", "voice": "alloy", "input": "Hi.", "response_format": "pcm"}',
            headers={"Content-Type": "application/json; charset=UTF-8"},
        )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert utf8.status_code == 200
