"""Importing the aligner package must not change the process's arithmetic: nagisa's DyNet
library, loaded by `import qwen_asr`, turns on flush-to-zero in the importing thread.

Each check runs in a fresh interpreter, because a library's load-time setting happens once per
process: in this one the package is long imported. The three cannot share one child either:
each is about the package's first import in a process (a second import does nothing), from a
different thread (the bare import and the guarded one in the main thread, the aligner slot's on
its own thread), and the bare import leaves flush-to-zero on for everything after it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

SUBNORMALS = """
import sys, threading
def kept():
    return sys.float_info.min / 2 > 0.0
def in_new_thread():
    seen = []
    thread = threading.Thread(target=lambda: seen.append(kept()))
    thread.start()
    thread.join()
    return seen[0]
"""


def run_python(code: str) -> dict[str, bool]:
    script = SUBNORMALS + textwrap.dedent(code)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, bool] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_bare_package_import_flushes_subnormals_which_is_why_the_guard_exists() -> None:
    result = run_python("""
        import json
        import qwen_asr  # noqa: TID251 - the trap itself
        print(json.dumps({"main": kept(), "new_thread": in_new_thread()}))
    """)
    assert result == {"main": False, "new_thread": False}


def test_the_guarded_import_keeps_subnormals_here_and_in_later_threads() -> None:
    result = run_python("""
        import json
        import server.engine.slots.asr_package
        print(json.dumps({"main": kept(), "new_thread": in_new_thread()}))
    """)
    assert result == {"main": True, "new_thread": True}


def test_the_aligner_slot_loads_and_aligns_without_touching_any_threads_arithmetic(aligner_checkpoint: Path) -> None:
    result = run_python(f"""
        import asyncio, json, sys
        import numpy as np
        from server.engine.slots.aligner import AlignerSlot

        async def align_once():
            slot = AlignerSlot({str(aligner_checkpoint)!r}, "cpu", idle_timeout=0)
            noise = np.random.default_rng(0).uniform(-0.1, 0.1, 24_000).astype(np.float32)
            spans = await slot.align(noise, 24_000, "Hello there, world.", "English")
            on_slot_thread = await asyncio.get_running_loop().run_in_executor(slot._thread, kept)
            await slot.stop()
            return len(spans), on_slot_thread

        words, on_slot_thread = asyncio.run(align_once())
        print(json.dumps({{"words": words, "slot_thread": on_slot_thread, "main": kept(),
                           "new_thread": in_new_thread(), "librosa_audio": "librosa.core.audio" in sys.modules}}))
    """)
    # librosa_audio: the slot resampled the 24 kHz speech itself; librosa's resampler, whose
    # first use compiles numba kernels, was never loaded.
    expected = {"words": 3, "slot_thread": True, "main": True, "new_thread": True, "librosa_audio": False}
    assert result == expected
