"""WebSocket latency: interactive priority under bulk load, and the text-stream delay.

Run from the repository root::

    python bench/websocket.py [--model DIR] [--trials 3] [--max-new-tokens 48]

Without --model a tiny random checkpoint is built in a temporary directory (its audio is
noise, but loading, generation, decoding and the WebSocket are all real).

1. Priority. Sixteen HTTP requests of three sentences each are sent, twice MAX_BATCH_SIZE:
   eight run and eight wait for a row. Once all are admitted, one single-sentence utterance
   is sent on the WebSocket and the time to its first audio frame is taken. The same is done
   with the WebSocket's priority switched off (in this process, by queueing every job as
   bulk work), and with the utterance sent as one more HTTP stream instead; the idle row is
   the same utterance with nothing else queued.
2. Text stream. Text is sent word by word, as an LLM writes it (one delta every
   --delta-ms). For one sentence generated greedily (the same audio in every mode), the
   time to its first audio frame from the delta that completed it (the next sentence's
   first word, or the flush) is set against the same sentence sent as a whole utterance.
   For a five-sentence answer, each sentence's delay from its completing delta and from its
   final punctuation, and the silence a listener playing the audio in real time would hear
   before it (text arrives faster than speech, so later sentences wait for earlier ones;
   what matters then is that the audio does not run dry).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.devmodel import build_dev_checkpoint
from server.engine import worker as engine_worker
from tests.support.live_server import LiveServer, live_server
from tests.support.ws import ws_connect

BULK = "Bulk work arrives first and fills the queue. It has three sentences. This is the last one."
LIVE = "Someone is listening to this one."
BULK_JOBS = 16  # twice the default MAX_BATCH_SIZE: half of them wait for a row
STORY = (
    "The assistant starts to answer. Its words arrive a few at a time. "
    "Each sentence is spoken once it is complete! Does the listener wait long? "
    "Not for long, if the server keeps up."
)


def wait_depth(srv: LiveServer, depth: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while srv.health()["queue_depth"] < depth:
        if time.monotonic() > deadline:
            raise RuntimeError(f"queue depth never reached {depth}")
        time.sleep(0.005)


def ws_first_audio(srv: LiveServer, body: dict[str, Any]) -> float:
    with ws_connect(srv) as socket:
        started = time.perf_counter()
        socket.send(json.dumps(body))
        first: float | None = None
        while True:
            message = socket.recv(timeout=600)
            if isinstance(message, bytes):
                first = first if first is not None else time.perf_counter() - started
            elif json.loads(message)["event"] in ("done", "error"):
                assert json.loads(message)["event"] == "done", message
                assert first is not None
                return first


def http_first_audio(srv: LiveServer, body: dict[str, Any]) -> float:
    with srv.client(timeout=600) as client:
        started = time.perf_counter()
        with client.stream("POST", "/v1/audio/speech", json=body) as response:
            response.raise_for_status()
            first: float | None = None
            for chunk in response.iter_bytes():
                if chunk and first is None:
                    first = time.perf_counter() - started
    assert first is not None
    return first


def under_bulk(srv: LiveServer, measure: Any, bulk_jobs: int, max_new_tokens: int) -> float:
    """Queue `bulk_jobs` HTTP requests, then run `measure()` while they are all admitted."""
    body = {"model": "tts-1", "voice": "alloy", "input": BULK, "response_format": "pcm", "stream": False}
    body["max_new_tokens"] = max_new_tokens

    def bulk(_: int) -> None:
        with srv.client(timeout=600) as client:
            client.post("/v1/audio/speech", json=body).raise_for_status()

    with concurrent.futures.ThreadPoolExecutor(bulk_jobs) as pool:
        futures = [pool.submit(bulk, i) for i in range(bulk_jobs)]
        wait_depth(srv, bulk_jobs)
        result: float = measure()
        for future in futures:
            future.result()
    return result


def priority_rows(srv: LiveServer, trials: int, max_new_tokens: int) -> list[tuple[str, list[float]]]:
    utterance = {"input": LIVE, "voice": "Ryan", "max_new_tokens": max_new_tokens}
    http_body = {"model": "tts-1", **utterance, "response_format": "pcm"}
    loop = srv.engine._loop_thread  # the bench switches the priority off in-process, nothing else
    submit = loop.submit
    rows: dict[str, list[float]] = {name: [] for name in ("idle", "ws, priority", "ws, no priority", "http stream")}
    for _ in range(trials):
        rows["idle"].append(ws_first_audio(srv, utterance))
        rows["ws, priority"].append(under_bulk(srv, lambda: ws_first_audio(srv, utterance), BULK_JOBS, max_new_tokens))
        loop.submit = lambda stream: loop._enqueue(stream, engine_worker.BULK)  # type: ignore[method-assign]
        try:
            measured = under_bulk(srv, lambda: ws_first_audio(srv, utterance), BULK_JOBS, max_new_tokens)
            rows["ws, no priority"].append(measured)
        finally:
            loop.submit = submit  # type: ignore[method-assign]
        rows["http stream"].append(under_bulk(srv, lambda: http_first_audio(srv, http_body), BULK_JOBS, max_new_tokens))
    return list(rows.items())


class TextStreamRun:
    """One text stream sent word by word: when each delta left, and for each sentence when
    its first audio frame arrived and how many bytes of audio it had."""

    def __init__(self, srv: LiveServer, words: list[str], delta_s: float, start: dict[str, Any]) -> None:
        self.sent_at: list[float] = []  # one per word, then the flush
        self.first_audio: dict[int, float] = {}
        self.audio_bytes: dict[int, int] = {}
        self.sentences: dict[int, str] = {}
        with ws_connect(srv) as socket:
            socket.send(json.dumps({"type": "start", **start}))
            listener = threading.Thread(target=self._listen, args=(socket,))
            listener.start()
            for word in words:
                self.sent_at.append(time.perf_counter())
                socket.send(json.dumps({"type": "delta", "text": word + " "}))
                time.sleep(delta_s)
            self.sent_at.append(time.perf_counter())
            socket.send(json.dumps({"type": "flush"}))
            listener.join()

    def _listen(self, socket: Any) -> None:
        current = -1
        while True:
            message = socket.recv(timeout=600)
            if isinstance(message, bytes):
                self.first_audio.setdefault(current, time.perf_counter())
                self.audio_bytes[current] = self.audio_bytes.get(current, 0) + len(message)
                continue
            event = json.loads(message)
            if event["event"] == "sentence":
                current = event["index"]
                self.sentences[current] = event["text"]
            elif event["event"] in ("done", "error"):
                assert event["event"] == "done", event
                return

    def rows(self) -> list[tuple[float, float, float]]:
        """Per sentence: seconds from the delta that completed it (the next sentence's first
        word, or the flush) to its first audio; from its final punctuation; and the silence a
        listener playing the stream in real time would hear before it."""
        rows = []
        word = 0
        playing_until = 0.0
        for index in sorted(self.sentences):
            last_word = word + len(self.sentences[index].split(" ")) - 1
            arrived = self.first_audio[index]
            gap = 0.0 if index == 0 else max(0.0, arrived - playing_until)
            playing_until = max(playing_until, arrived) + self.audio_bytes[index] / 2 / 24_000
            rows.append((arrived - self.sent_at[last_word + 1], arrived - self.sent_at[last_word], gap))
            word = last_word + 1
        return rows


def incremental_rows(srv: LiveServer, trials: int, delta_s: float, max_new_tokens: int) -> list[tuple[str, float]]:
    """One sentence, greedy (temperature 0) so that every mode generates the same audio:
    its first audio as a whole utterance, and in a text stream completed by the next
    sentence's first word or by a flush."""
    greedy = {"voice": "Ryan", "temperature": 0, "max_new_tokens": max_new_tokens}
    words = LIVE.split(" ")
    measured: dict[str, list[float]] = {"utterance": [], "stream, next word": [], "stream, flush": []}
    for _ in range(trials):
        measured["utterance"].append(ws_first_audio(srv, {"input": LIVE, **greedy}))
        measured["stream, next word"].append(TextStreamRun(srv, [*words, "Then"], delta_s, greedy).rows()[0][0])
        measured["stream, flush"].append(TextStreamRun(srv, words, delta_s, greedy).rows()[0][0])
    return [(label, statistics.median(values)) for label, values in measured.items()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="checkpoint directory (default: build a tiny one)")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=48, help="per-sentence cap, keeps CPU runs short")
    parser.add_argument("--delta-ms", type=float, default=40.0, help="time between text deltas (an LLM's pace)")
    parser.add_argument("--threads", type=int, default=1, help="TORCH_THREADS for the server (0 = torch default)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        model = args.model or build_dev_checkpoint(Path(scratch) / "custom_voice", "custom_voice")
        with live_server(
            model_id=str(model),
            preload_model=True,
            idle_timeout=0,
            max_queue_depth=2 * BULK_JOBS,
            max_new_tokens=args.max_new_tokens,
            torch_threads=args.threads,
            device=args.device,
            audio_cache_max=0,  # every request is synthesised
        ) as srv:
            ws_first_audio(srv, {"input": "Warm up.", "voice": "Ryan"})
            device = srv.health()["models"]["custom_voice"]["device"]
            priority = priority_rows(srv, args.trials, args.max_new_tokens)
            delta_s = args.delta_ms / 1000
            incremental = incremental_rows(srv, args.trials, delta_s, args.max_new_tokens)
            story = [
                TextStreamRun(srv, STORY.split(" "), delta_s, {"voice": "Ryan", "max_new_tokens": args.max_new_tokens})
                for _ in range(args.trials)
            ]

    name = "tiny dev checkpoint" if args.model is None else args.model
    print(f"device: {device}  model: {name}  max_new_tokens: {args.max_new_tokens}  trials: {args.trials}")
    print("\nFirst audio of a one-sentence utterance while 16 HTTP jobs (3 sentences each) run or wait")
    print(f"{'request':>16} | {'median s':>8} | {'min s':>6} | {'max s':>6}")
    print("-" * 46)
    for label, values in priority:
        print(f"{label:>16} | {statistics.median(values):>8.3f} | {min(values):>6.3f} | {max(values):>6.3f}")

    print(f"\nOne sentence, greedy, one word every {args.delta_ms:g} ms: seconds to its first audio frame")
    print(f"{'sent as':>18} | {'median s':>8}")
    print("-" * 30)
    for label, value in incremental:
        print(f"{label:>18} | {value:>8.3f}")

    print(f"\nA five-sentence answer, one word every {args.delta_ms:g} ms (medians of {args.trials})")
    print(
        f"{'sentence':>8} | {'from completing delta s':>23} | {'from its punctuation s':>22} | {'playback gap s':>14}"
    )
    print("-" * 77)
    story_rows = [run.rows() for run in story]
    for index in range(len(story_rows[0])):
        completed, punctuation, gap = (statistics.median(rows[index][k] for rows in story_rows) for k in range(3))
        print(f"{index:>8} | {completed:>23.3f} | {punctuation:>22.3f} | {gap:>14.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
