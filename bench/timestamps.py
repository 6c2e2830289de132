"""What word timestamps cost a stream: first audio, last audio and last words, with
`timestamps` on and off, side by side in one run on one server.

Run from the repository root::

    python bench/timestamps.py [--model DIR] [--aligner DIR] [--repeats 5]

Without --model / --aligner the tiny random dev checkpoints are built in a temporary
directory (noise audio and arbitrary times, but every line of generation, alignment,
encoding and HTTP is real). Each input is requested as OpenAI's SSE stream
(`stream_format: sse`), the same seed with timestamps off and on, alternating, and the
medians are printed: seconds to the first audio delta, to the last delta, and to the last
`speech.audio.timestamps` event (the words of the last segment, aligned after its audio).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from httpx_sse import connect_sse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.streaming import INPUTS
from server.devmodel import build_dev_checkpoint
from server.devmodel.aligner import build_aligner_checkpoint
from tests.support.live_server import live_server


def timed_sse(client: httpx.Client, body: dict[str, object]) -> tuple[float, float, float | None, int]:
    """Seconds to the first delta, to the last delta, to the last words event, and the number
    of words events."""
    started = time.perf_counter()
    first = last = None
    words_at = None
    words = 0
    with connect_sse(client, "POST", "/v1/audio/speech", json=body) as source:
        source.response.raise_for_status()
        for event in source.iter_sse():
            kind = json.loads(event.data)["type"]
            now = time.perf_counter() - started
            if kind == "speech.audio.delta":
                first = now if first is None else first
                last = now
            elif kind == "speech.audio.timestamps":
                words_at = now
                words += 1
    assert first is not None and last is not None
    return first, last, words_at, words


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="CustomVoice checkpoint (default: build a tiny one)")
    parser.add_argument("--aligner", type=Path, help="forced aligner checkpoint (default: build the tiny one)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="TORCH_THREADS for the server (0 = torch default)")
    args = parser.parse_args()

    results: dict[tuple[str, bool], list[tuple[float, float, float | None, int]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        model = args.model or build_dev_checkpoint(Path(scratch) / "custom_voice", "custom_voice")
        aligner = args.aligner or build_aligner_checkpoint(Path(scratch) / "aligner", "tiny")
        settings = {"model_id": str(model), "aligner_model_id": str(aligner), "preload_model": True}
        with (
            live_server(**settings, idle_timeout=0, torch_threads=args.threads) as server,
            server.client(timeout=600) as client,
        ):
            warm = {"voice": "alloy", "input": "Warm up.", "response_format": "pcm", "stream_format": "sse"}
            timed_sse(client, {**warm, "timestamps": True})  # loads the aligner (it warms itself up)
            for label, text in INPUTS.items():
                for repeat in range(args.repeats):
                    for timestamps in (False, True):  # alternating: the machine's drift hits both
                        body = {**warm, "input": text, "seed": repeat, "timestamps": timestamps}
                        results.setdefault((label, timestamps), []).append(timed_sse(client, body))

    print(f"device: cpu  model: {args.model or 'tiny dev checkpoint'}  aligner: {args.aligner or 'tiny dev aligner'}")
    print(
        f"{'input':>21} | {'timestamps':>10} | {'first audio s':>13} | {'last audio s':>12} | "
        f"{'last words s':>12} | {'words events':>12} | {'first audio on/off':>18}"
    )
    print("-" * 118)
    for label in INPUTS:
        off_first = statistics.median(m[0] for m in results[(label, False)])
        for timestamps in (False, True):
            measured = results[(label, timestamps)]
            first = statistics.median(m[0] for m in measured)
            last = statistics.median(m[1] for m in measured)
            words = [m[2] for m in measured if m[2] is not None]
            words_text = f"{statistics.median(words):>12.3f}" if words else f"{'-':>12}"
            ratio = f"{first / off_first:>18.2f}" if timestamps else f"{'':>18}"
            print(
                f"{label:>21} | {'on' if timestamps else 'off':>10} | {first:>13.3f} | {last:>12.3f} | "
                f"{words_text} | {measured[0][3]:>12} | {ratio}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
