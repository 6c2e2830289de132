"""The output cache on the live server: a repeat is answered from it byte for byte, like a
fresh response; seeds and Cache-Control bypass it; it is bounded by bytes; /cache/clear
empties it; hits are counted and logged."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from server.speech.output_cache import CachedAudio, OutputCache
from tests.support.audio import decode_any
from tests.support.live_server import LiveServer, RecordCollector, live_server

_unique = itertools.count()


def body(**extra: Any) -> dict[str, Any]:
    """A request no other test sends, so the cache state of the shared server does not matter;
    short (a frame cap), because only its bytes matter here."""
    text = f"Cached phrase number {next(_unique)}."
    return {"model": "tts-1", "voice": "alloy", "input": text, "max_new_tokens": 24, **extra}


def post(server: LiveServer, json: dict[str, Any], request_id: str, **headers: str) -> httpx.Response:
    with server.client(headers={"X-Request-ID": request_id, **headers}) as client:
        response = client.post("/v1/audio/speech", json=json)
    assert response.status_code == 200
    return response


def stream(server: LiveServer, json: dict[str, Any], request_id: str) -> tuple[httpx.Response, list[bytes]]:
    with (
        server.client(headers={"X-Request-ID": request_id}) as client,
        client.stream("POST", "/v1/audio/speech", json=json) as response,
    ):
        assert response.status_code == 200
        return response, list(response.iter_bytes())


def output_stats(server: LiveServer) -> dict[str, int]:
    stats: dict[str, int] = server.health()["cache"]["output"]
    return stats


@pytest.mark.parametrize("fmt", ["mp3", "wav", "flac", "pcm"])
def test_a_whole_file_hit_is_the_miss_byte_for_byte(server: LiveServer, request_log: RecordCollector, fmt: str) -> None:
    request = body(response_format=fmt, stream=False)
    before = output_stats(server)
    miss = post(server, request, f"cache-miss-{fmt}")
    hit = post(server, request, f"cache-hit-{fmt}")
    assert hit.content == miss.content
    for header in ("content-type", "content-disposition", "content-length"):
        assert hit.headers[header] == miss.headers[header]
    assert decode_any(hit.content, fmt).duration > 0
    assert request_log.wait_for_request(f"cache-miss-{fmt}")["cache"] == "miss"
    line = request_log.wait_for_request(f"cache-hit-{fmt}")
    assert line["cache"] == "hit" and line["segments_done"] == 0 and line["audio_seconds"] > 0
    assert request_log.segments(f"cache-hit-{fmt}") == []  # the model never saw it
    after = output_stats(server)
    assert after["hits"] == before["hits"] + 1
    assert after["misses"] == before["misses"] + 1


@pytest.mark.parametrize("fmt", ["mp3", "wav", "pcm"])
def test_a_streamed_hit_is_streamed_like_the_miss(server: LiveServer, request_log: RecordCollector, fmt: str) -> None:
    request = body(response_format=fmt)
    miss, miss_parts = stream(server, request, f"cache-stream-miss-{fmt}")
    hit, hit_parts = stream(server, request, f"cache-stream-hit-{fmt}")
    assert b"".join(hit_parts) == b"".join(miss_parts)
    for response in (miss, hit):
        assert response.headers["transfer-encoding"] == "chunked"
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        assert response.headers["content-type"] == miss.headers["content-type"]
        assert response.headers["content-disposition"] == miss.headers["content-disposition"]
    assert request_log.wait_for_request(f"cache-stream-hit-{fmt}")["cache"] == "hit"


def test_voice_aliases_and_the_model_name_share_an_entry(server: LiveServer, request_log: RecordCollector) -> None:
    request = body(response_format="pcm", stream=False)
    first = post(server, request, "alias-first")
    # alloy is Vivian; a body without a model is the preset model too.
    same = {key: value for key, value in request.items() if key != "model"} | {"voice": "Vivian"}
    assert post(server, same, "alias-second").content == first.content
    assert request_log.wait_for_request("alias-second")["cache"] == "hit"


def test_what_changes_the_audio_changes_the_key(server: LiveServer, request_log: RecordCollector) -> None:
    request = body(response_format="pcm", stream=False)
    post(server, request, "key-base")
    changes = [
        {"voice": "Ryan"},
        {"speed": 1.5},
        {"temperature": 0.5},
        {"top_k": 10},
        {"max_new_tokens": 20},
        {"language": "German"},
        {"instructions": "Whisper."},
        {"response_format": "wav"},
    ]
    for i, change in enumerate(changes):
        post(server, {**request, **change}, f"key-change-{i}")
        assert request_log.wait_for_request(f"key-change-{i}")["cache"] == "miss", change


def test_a_seed_or_no_cache_bypasses_the_cache(server: LiveServer, request_log: RecordCollector) -> None:
    seeded = body(response_format="pcm", stream=False, seed=11)
    unseeded = body(response_format="pcm", stream=False)
    before = output_stats(server)
    for i in range(2):
        post(server, seeded, f"bypass-seed-{i}")
        post(server, unseeded, f"bypass-header-{i}", **{"Cache-Control": "no-cache"})
    for rid in ("bypass-seed-0", "bypass-seed-1", "bypass-header-0", "bypass-header-1"):
        line = request_log.wait_for_request(rid)
        assert line["cache"] == "bypass" and line["segments_done"] == 1
    after = output_stats(server)
    assert (after["hits"], after["misses"], after["size"]) == (before["hits"], before["misses"], before["size"])


def test_sse_is_never_cached(server: LiveServer, request_log: RecordCollector) -> None:
    request = body(response_format="pcm", stream_format="sse")
    for i in range(2):
        with server.client(headers={"X-Request-ID": f"sse-{i}"}) as client:
            assert client.post("/v1/audio/speech", json=request).status_code == 200
        assert "cache" not in request_log.wait_for_request(f"sse-{i}")


def test_hits_are_in_metrics(server: LiveServer) -> None:
    request = body(response_format="pcm", stream=False)
    post(server, request, "metrics-miss")
    post(server, request, "metrics-hit")
    with server.client() as client:
        text = client.get("/metrics").text
    stats = output_stats(server)
    samples = {
        (sample.name, sample.labels.get("cache")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("qwen3_tts_cache_hits_total", "output")] == stats["hits"] >= 1
    assert samples[("qwen3_tts_cache_misses_total", "output")] == stats["misses"]
    assert samples[("qwen3_tts_cache_entries", "output")] == stats["size"]
    assert samples[("qwen3_tts_cache_bytes", "output")] == stats["bytes"]
    assert ("qwen3_tts_cache_hits_total", "prompt") in samples


@pytest.fixture(scope="module")
def small_cache(custom_voice_dir: Path) -> Iterator[LiveServer]:
    # One sentence of raw PCM is at most 24 frames of 3840 bytes (92160): always fits alone.
    with live_server(
        model_id=str(custom_voice_dir), idle_timeout=0, max_new_tokens=24, audio_cache_max_bytes=100_000
    ) as server:
        yield server


def test_the_cache_is_bounded_by_bytes_least_recently_used_first(
    small_cache: LiveServer, request_log: RecordCollector
) -> None:
    first = body(response_format="pcm", stream=False)
    post(small_cache, first, "lru-first")
    stats = output_stats(small_cache)
    assert stats["size"] == 1 and stats["bytes"] > 0 and stats["max_bytes"] == 100_000
    newest: dict[str, Any] = first
    for i in range(40):  # each entry is at least one frame (3840 bytes): the cache fills in time
        newest = body(response_format="pcm", stream=False)
        post(small_cache, newest, f"lru-fill-{i}")
        stats = output_stats(small_cache)
        assert stats["bytes"] <= 100_000
        if stats["evictions"] > 0:
            break
    assert stats["evictions"] > 0
    post(small_cache, newest, "lru-newest-again")
    assert request_log.wait_for_request("lru-newest-again")["cache"] == "hit"
    post(small_cache, first, "lru-first-again")  # the oldest went first
    assert request_log.wait_for_request("lru-first-again")["cache"] == "miss"


def test_cache_clear_empties_both_caches(small_cache: LiveServer, request_log: RecordCollector) -> None:
    request = body(response_format="pcm", stream=False)
    post(small_cache, request, "clear-before")
    with small_cache.client() as client:
        response = client.post("/cache/clear")
    assert response.status_code == 200
    cleared = response.json()["cleared"]
    assert cleared["output"] >= 1 and cleared["prompt"] == 0
    assert output_stats(small_cache)["size"] == 0 and output_stats(small_cache)["bytes"] == 0
    post(small_cache, request, "clear-after")
    assert request_log.wait_for_request("clear-after")["cache"] == "miss"


def test_lru_bounds_in_isolation() -> None:
    cache = OutputCache(max_entries=2, max_bytes=10)
    cache.put("a", CachedAudio(b"aaaa", False, 1))
    cache.put("b", CachedAudio(b"bbbb", False, 1))
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", CachedAudio(b"cccc", False, 1))  # 12 bytes > 10: b goes
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None
    assert not cache.put("big", CachedAudio(b"x" * 11, False, 1))  # larger than the whole cache
    cache.put("d", CachedAudio(b"d", False, 1))  # 3 entries > 2: the least recent (a) goes
    assert cache.get("a") is None
    assert cache.stats()["size"] == 2 and cache.stats()["bytes"] == 5
    assert OutputCache(0, 10).put("a", CachedAudio(b"a", False, 1)) is False
