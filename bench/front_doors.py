"""The front doors side by side: from the text that completes a sentence to its first audio.

Run from the repository root::

    python bench/front_doors.py [--model DIR] [--trials 5]

Without --model a tiny random checkpoint is built in a temporary directory (its audio is
noise, but loading, generation, decoding and every protocol are real). One server serves
all four doors; the trials are interleaved, door by door, so a busy machine slows them
alike. For the three streaming doors the client sends one sentence and the first word of
the next (so the first sentence is known to be complete) and times its first audio; the HTTP
row is the same sentence alone as a streamed PCM request (time to first byte).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from websockets.sync.client import connect
from wyoming.audio import AudioChunk
from wyoming.tts import SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped, SynthesizeVoice

from server.devmodel import build_dev_checkpoint
from tests.support.live_server import LiveServer, free_port, live_server
from tests.support.wyoming_client import client_for

SENTENCE = "The first sentence is here and complete."
DELTA = SENTENCE + " Next"


def http_first_byte(server: LiveServer) -> float:
    body = {"input": SENTENCE, "voice": "Ryan", "response_format": "pcm"}
    with server.client() as client:
        started = time.perf_counter()
        with client.stream("POST", "/v1/audio/speech", json=body) as response:
            for _ in response.iter_raw():
                return time.perf_counter() - started
    raise RuntimeError("no audio")


def websocket_first_audio(server: LiveServer) -> float:
    with connect(f"ws://127.0.0.1:{server.port}/v1/audio/speech/ws", proxy=None) as ws:
        ws.send(json.dumps({"type": "start", "voice": "Ryan"}))
        ws.send(json.dumps({"type": "delta", "text": DELTA}))
        started = time.perf_counter()
        while isinstance(ws.recv(timeout=120), str):
            pass
        elapsed = time.perf_counter() - started
        ws.send(json.dumps({"type": "flush"}))
        while (message := ws.recv(timeout=120)) and (isinstance(message, bytes) or '"done"' not in message):
            pass
    return elapsed


def omni_first_audio(server: LiveServer) -> float:
    config = {"type": "session.config", "voice": "Ryan", "response_format": "pcm", "stream_audio": True}
    with connect(f"ws://127.0.0.1:{server.port}/v1/audio/speech/stream", proxy=None) as ws:
        ws.send(json.dumps(config))
        ws.send(json.dumps({"type": "input.text", "text": DELTA}))
        started = time.perf_counter()
        while isinstance(ws.recv(timeout=120), str):
            pass
        elapsed = time.perf_counter() - started
        ws.send(json.dumps({"type": "input.done"}))
        while (message := ws.recv(timeout=120)) and (isinstance(message, bytes) or "session.done" not in message):
            pass
    return elapsed


def wyoming_first_audio(server: LiveServer) -> float:
    async def run() -> float:
        async with client_for(server) as client:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="Ryan")).event())
            await client.write_event(SynthesizeChunk(text=DELTA).event())
            started = time.perf_counter()
            while (event := await client.read_event()) is not None and not AudioChunk.is_type(event.type):
                pass
            elapsed = time.perf_counter() - started
            await client.write_event(SynthesizeStop().event())
            while (event := await client.read_event()) is not None and not SynthesizeStopped.is_type(event.type):
                pass
            return elapsed

    return asyncio.run(run())


DOORS: dict[str, Callable[[LiveServer], float]] = {
    "HTTP stream (the sentence alone, first byte)": http_first_byte,
    "WebSocket text stream": websocket_first_audio,
    "Wyoming streaming synthesis": wyoming_first_audio,
    "vLLM-Omni speech socket": omni_first_audio,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a CustomVoice checkpoint directory (default: a tiny dev one)")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or build_dev_checkpoint(Path(tmp) / "custom_voice", "custom_voice", seed=0)
        settings = {
            "model_id": str(model),
            "device": args.device,
            "idle_timeout": 0,
            "voices_dir": Path(tmp) / "voices",
            "audio_cache_max": 0,  # every request is synthesised
            "wyoming_port": free_port(),
            "wyoming_host": "127.0.0.1",
        }
        with live_server(**settings) as server:
            http_first_byte(server)  # load the model before timing
            times: dict[str, list[float]] = {door: [] for door in DOORS}
            for _ in range(args.trials):
                for door, measure in DOORS.items():
                    times[door].append(measure(server))
    print(f"\nfirst audio after the text that completes a sentence (median of {args.trials}, seconds)\n")
    print("| front door | median | min | max |")
    print("|---|---:|---:|---:|")
    for door, values in times.items():
        print(f"| {door} | {statistics.median(values):.3f} | {min(values):.3f} | {max(values):.3f} |")


if __name__ == "__main__":
    main()
