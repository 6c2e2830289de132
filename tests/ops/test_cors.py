"""CORS: a browser preflight from an allowed origin is answered; any other origin gets no
Access-Control-Allow-Origin; without CORS_ORIGINS there are no CORS headers at all."""

from __future__ import annotations

from pathlib import Path

from tests.support.live_server import LiveServer, live_server
from tests.support.ops import ALLOWED_ORIGIN

PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type, x-request-id",
}


def test_preflight_from_allowed_origin_is_answered(ops_server: LiveServer) -> None:
    with ops_server.client() as client:
        response = client.options("/v1/audio/speech", headers={"Origin": ALLOWED_ORIGIN, **PREFLIGHT})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    allowed = response.headers["access-control-allow-headers"].lower()
    for header in ("authorization", "content-type", "x-request-id"):
        assert header in allowed
    assert "POST" in response.headers["access-control-allow-methods"]


def test_preflight_from_other_origin_is_refused(ops_server: LiveServer) -> None:
    with ops_server.client() as client:
        response = client.options("/v1/audio/speech", headers={"Origin": "https://evil.example", **PREFLIGHT})
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


def test_response_exposes_request_id_to_allowed_origin(ops_server: LiveServer) -> None:
    with ops_server.client() as client:
        response = client.get("/v1/models", headers={"Origin": ALLOWED_ORIGIN})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    exposed = response.headers["access-control-expose-headers"].lower()
    assert "x-request-id" in exposed
    assert "content-disposition" in exposed


def test_no_cors_headers_when_no_origins_configured(custom_voice_dir: Path) -> None:
    with live_server(model_id=str(custom_voice_dir)) as server, server.client() as client:
        response = client.options("/v1/audio/speech", headers={"Origin": ALLOWED_ORIGIN, **PREFLIGHT})
    assert "access-control-allow-origin" not in response.headers
