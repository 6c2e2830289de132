"""Reference uploads that would decode to far more audio than allowed: refused by their
declared length before decoding, or by a running limit while decoding, with the server's
memory measured around each upload. Plus the odd files a careless client sends: many
channels, unusual rates."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.support.audio import decode_any
from tests.support.bombs import bombs, encode_silence_soundfile
from tests.support.live_server import LiveServer
from tests.support.reference import encode_soundfile, tone, wav

# Old decoding grew the server by 36 MB (a 600 s MP3) to 770 MB (a 600 s six-channel FLAC)
# on these files; bounded decoding stays within a few MB of the upload itself.
PEAK_GROWTH_BOUND_MB = 24
CLEAR_REFS = Path("/proc/self/clear_refs")


@pytest.fixture(scope="module")
def bomb_files() -> dict[str, bytes]:
    return bombs(600)


def resident_mb() -> tuple[float, float]:
    """(peak since the last reset, now) of this process, which runs the live server too."""
    status = Path("/proc/self/status").read_text()
    peak = re.search(r"VmHWM:\s+(\d+)", status)
    now = re.search(r"VmRSS:\s+(\d+)", status)
    assert peak and now
    return int(peak.group(1)) / 1024, int(now.group(1)) / 1024


def peak_growth_mb(action: Any) -> tuple[float, Any]:
    """How far resident memory rose above its level at the start while `action` ran."""
    CLEAR_REFS.write_text("5")  # resets the peak (VmHWM) to the current resident size
    _, before = resident_mb()
    result = action()
    peak, _ = resident_mb()
    return peak - before, result


def clone(client: httpx.Client, data: bytes, name: str = "ref.bin") -> httpx.Response:
    return client.post(
        "/v1/audio/speech/clone", data={"input": "Hi.", "response_format": "wav"}, files={"file": (name, data)}
    )


def save_voice(client: httpx.Client, data: bytes, name: str) -> httpx.Response:
    return client.post("/v1/audio/voices", data={"name": name}, files={"audio_sample": ("ref.bin", data)})


def test_bombs_are_refused_in_bounded_memory(hardened: LiveServer, bomb_files: dict[str, bytes]) -> None:
    with hardened.client() as client:
        # Warm the decoders' imports and buffers, so the measurements below are the upload's alone.
        assert clone(client, wav(seed=1)).status_code == 200
        for kind, data in bomb_files.items():
            for label, send in (
                ("clone", lambda d: clone(client, d)),
                ("voice", lambda d: save_voice(client, d, "bomb")),
            ):
                growth, response = peak_growth_mb(lambda send=send, data=data: send(data))
                assert response.status_code == 400, (kind, label, response.text)
                error = response.json()["error"]
                assert error["code"] == "invalid_reference_audio"
                assert "at most 30 s" in error["message"], (kind, error)
                assert growth < PEAK_GROWTH_BOUND_MB, f"{kind} via {label}: +{growth:.0f} MB"
    assert hardened.health()["queue_depth"] == 0


def test_declared_length_is_checked_before_decoding(hardened: LiveServer, bomb_files: dict[str, bytes]) -> None:
    with hardened.client() as client:
        declared = clone(client, bomb_files["flac"]).json()["error"]["message"]
        undeclared = clone(client, bomb_files["webm-undeclared"]).json()["error"]["message"]
    assert "declares 600.0 s" in declared
    # A live-stream WebM says nothing about its length: the running limit stops it.
    assert "longer than that" in undeclared


@pytest.mark.parametrize(
    "label, data",
    [
        ("six channels at 11025 Hz", lambda: encode_soundfile(tone(2.0, 11_025, channels=6), 11_025, "flac")),
        ("stereo at 8000 Hz", lambda: encode_soundfile(tone(2.0, 8_000, channels=2), 8_000, "wav")),
        ("mono at 96000 Hz", lambda: encode_soundfile(tone(2.0, 96_000), 96_000, "wav")),
        ("mono at an odd 44101 Hz", lambda: encode_soundfile(tone(2.0, 44_101), 44_101, "wav")),
    ],
)
def test_odd_but_valid_references_clone(hardened: LiveServer, label: str, data: Any) -> None:
    with hardened.client() as client:
        response = clone(client, data())
    assert response.status_code == 200, (label, response.text)
    assert decode_any(response.content, "wav").duration > 0.1


@pytest.mark.parametrize("rate", [4_000, 384_000])
def test_rates_outside_the_supported_range_are_400(hardened: LiveServer, rate: int) -> None:
    data = encode_soundfile(np.zeros((rate * 2, 1), dtype=np.float32), rate, "wav")
    with hardened.client() as client:
        response = clone(client, data)
    assert response.status_code == 400
    assert "sample rate" in response.json()["error"]["message"]


def test_a_long_wav_under_the_upload_limit_is_refused_by_its_header(hardened: LiveServer) -> None:
    data = encode_silence_soundfile("wav", 600, 8_000, subtype="PCM_U8")
    with hardened.client() as client:
        growth, response = peak_growth_mb(lambda: clone(client, data))
    assert response.status_code == 400
    assert "declares 600.0 s" in response.json()["error"]["message"]
    assert growth < PEAK_GROWTH_BOUND_MB
