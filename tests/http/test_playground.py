"""Serving the playground: / redirects to it, every file has its media type and the content
security policy, nothing else is served, PLAYGROUND_ENABLED turns it off, and
/v1/requests/recent reports the latency breakdown the page shows."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from server.http.asgi.playground import CONTENT_SECURITY_POLICY, MEDIA_TYPES, PLAYGROUND_DIR
from server.speech.recent import RecentRequests
from tests.support.live_server import LiveServer, live_server

FILES = sorted(path.relative_to(PLAYGROUND_DIR).as_posix() for path in PLAYGROUND_DIR.rglob("*") if path.is_file())


def test_root_and_the_bare_path_redirect_to_the_page(server: LiveServer) -> None:
    with server.client() as client:
        for path in ("/", "/playground"):
            response = client.get(path)
            assert response.status_code in (307, 308)
            assert response.headers["location"].endswith("/playground/")
        page = client.get("/", follow_redirects=True)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "<title>Qwen3-TTS playground</title>" in page.text


@pytest.mark.parametrize("name", FILES)
def test_every_file_is_served_with_its_type_and_the_security_policy(server: LiveServer, name: str) -> None:
    suffix = "." + name.rsplit(".", 1)[-1]
    assert suffix in MEDIA_TYPES, f"{name}: add its media type to MEDIA_TYPES"
    with server.client() as client:
        response = client.get(f"/playground/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"] == MEDIA_TYPES[suffix]
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.content == (PLAYGROUND_DIR / name).read_bytes()
        # Unchanged files are revalidated cheaply.
        again = client.get(f"/playground/{name}", headers={"If-None-Match": response.headers["etag"]})
        assert again.status_code == 304


def test_the_page_has_no_inline_code_and_loads_nothing_from_elsewhere() -> None:
    """The policy forbids inline scripts and styles; the page must not need them, and it
    must work on a server without internet access."""
    html = (PLAYGROUND_DIR / "index.html").read_text()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S)
    assert scripts and all('src="' in attributes and not body.strip() for attributes, body in scripts)
    assert "<style" not in html and " style=" not in html
    assert not re.search(r"\bon[a-z]+=", html), "inline event handlers are blocked by the policy"
    for path in PLAYGROUND_DIR.rglob("*"):
        if path.suffix in (".html", ".css", ".js"):
            assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", path.read_text()), path.name


def test_other_paths_are_not_served(server: LiveServer) -> None:
    with server.client() as client:
        for path in ("/playground/missing.js", "/playground/../config.py", "/playground/%2e%2e/config.py"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert response.json()["error"]["code"] == "not_found"


def test_playground_disabled_serves_neither_page_nor_redirect() -> None:
    with live_server(playground_enabled=False) as server, server.client() as client:
        for path in ("/", "/playground/", "/playground/index.html"):
            assert client.get(path).status_code == 404, path
        assert client.get("/health").status_code == 200


def recent_ids(client: httpx.Client, wanted: set[str], timeout: float = 30.0) -> list[dict[str, Any]]:
    """/v1/requests/recent once it lists `wanted` (a stream is recorded when the server sees
    it end, a moment after the client has read it)."""
    deadline = time.monotonic() + timeout
    while True:
        entries: list[dict[str, Any]] = client.get("/v1/requests/recent").json()["data"]
        if wanted <= {entry["request_id"] for entry in entries} or time.monotonic() > deadline:
            return entries
        time.sleep(0.05)


def test_recent_requests_list_the_latency_breakdown_newest_first(server: LiveServer) -> None:
    body = {"model": "tts-1", "voice": "alloy", "input": "Recent request.", "response_format": "pcm"}
    with server.client() as client:
        ids = []
        for _ in range(2):
            response = client.post("/v1/audio/speech", json=body)
            assert response.status_code == 200
            ids.append(response.headers["x-request-id"])
        entries = [entry for entry in recent_ids(client, set(ids)) if entry["request_id"] in ids]
    assert [entry["request_id"] for entry in entries] == ids[::-1]
    for entry in entries:
        assert entry["status"] == 200
        assert entry["voice"] == "alloy->Vivian"
        assert entry["audio_seconds"] > 0
        assert 0 < entry["ttfa_ms"] <= entry["total_ms"]
        assert {"queue_ms", "load_ms", "inference_ms", "encode_ms", "finished_at"} <= entry.keys()


def test_recent_requests_are_kept_bounded() -> None:
    recent = RecentRequests(kept=3)
    for number in range(5):
        recent.add({"request_id": str(number)})
    assert [entry["request_id"] for entry in recent.newest_first()] == ["4", "3", "2"]
