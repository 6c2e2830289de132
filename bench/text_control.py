"""What reading a request's text as a script costs: plain text (every request pays this),
pause tags, an SSML document, hostile documents refused, and pronunciation lexicons of
growing size (compiled once per file change; a request with its own entries compiles them
with the file's).

Run from the repository root::

    python bench/text_control.py [--repeats 20]

Each row is the median of `repeats` runs, in milliseconds, with the peak of Python memory
allocated during one run (tracemalloc).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.text.pronunciations import Lexicon, Pronunciation
from server.text.reading import read_script
from server.text.script import ScriptError, Spoken

PLAIN = "The quick brown fox jumps over the lazy dog. " * 80  # about 3,600 characters
PAUSES = "One sentence here.[pause:0.3s] " * 100
PARAGRAPH = (
    '<p>Visit <sub alias="World Wide Web">WWW</sub> on <say-as interpret-as="date">2024-03-05</say-as>.'
    '<break time="300ms"/><voice name="Ryan"><prosody rate="fast">Call <say-as interpret-as="telephone">'
    "555 0123</say-as>.</prosody></voice></p>"
)
SSML = "<speak>" + PARAGRAPH * 12 + "</speak>"
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">' for i in range(1, 10))
    + "]><speak>&lol9;</speak>"
)
DEEP = "<speak>" + "<s>" * 10_000 + "deep" + "</s>" * 10_000 + "</speak>"


def measure(work: Callable[[], object], repeats: int) -> tuple[float, int]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    tracemalloc.start()
    work()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return statistics.median(times), peak


def refused(text: str) -> Callable[[], object]:
    def run() -> object:
        try:
            read_script(text)
        except ScriptError:
            return None
        raise AssertionError("not refused")

    return run


def lexicon_rows(repeats: int) -> list[tuple[str, Callable[[], object]]]:
    rows: list[tuple[str, Callable[[], object]]] = []
    run = Spoken(PLAIN + " Entry42 and Entry4242.")
    for size in (100, 1_000, 10_000):
        entries = [Pronunciation(f"Entry{i}", f"alias {i}") for i in range(size)]
        built = Lexicon(entries)
        built.apply(run, None)  # compiled
        rows.append((f"compile + apply, {size:,} entries", lambda e=entries: Lexicon(e).apply(run, None)))
        rows.append((f"apply, {size:,} entries (compiled)", lambda b=built: b.apply(run, None)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    rows: list[tuple[str, Callable[[], object]]] = [
        (f"plain text, {len(PLAIN):,} chars", lambda: read_script(PLAIN)),
        (f"100 pause tags, {len(PAUSES):,} chars", lambda: read_script(PAUSES)),
        (f"SSML, {len(SSML):,} chars", lambda: read_script(SSML)),
        ("billion laughs (refused)", refused(LAUGHS)),
        (f"10,000 levels, {len(DEEP):,} chars (refused)", refused(DEEP)),
        *lexicon_rows(args.repeats),
    ]
    print("| case | median ms | peak KiB |\n| --- | ---: | ---: |")
    for name, work in rows:
        ms, peak = measure(work, args.repeats)
        print(f"| {name} | {ms:.3f} | {peak / 1024:.0f} |")


if __name__ == "__main__":
    main()
