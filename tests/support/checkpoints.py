"""Variants of the dev checkpoints for tests that need a model to behave differently."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The session's checkpoint factory (the `dev_checkpoint` fixture, tests/conftest.py):
# dev_checkpoint(kind="custom_voice", *, size="tiny", behaviour="stop", seed=0) -> its directory.
DevCheckpoint = Callable[..., Path]
# The session's backend factory (the `dev_backend` fixture): dev_backend(kind="custom_voice", *,
# max_batch=8, max_length=512) -> a QwenBackend on the CPU, shared by the tests that ask for it.
DevBackend = Callable[..., Any]


def relabelled_as_small(checkpoint: Path, destination: Path) -> Path:
    """A copy of `checkpoint` labelled as a 0.6B model, which the package runs without
    instructions (it drops `instruct` for that size)."""
    shutil.copytree(checkpoint, destination)
    config_path = destination / "config.json"
    config = json.loads(config_path.read_text())
    config["tts_model_size"] = "0b6"
    config_path.write_text(json.dumps(config))
    return destination
