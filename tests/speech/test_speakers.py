"""The preset slot's speakers, read from its checkpoint's config.json when the app is
created: a checkpoint without preset speakers stops the start, with no server listening."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.app import create_app
from server.config import load_settings
from server.speech.speakers import CheckpointConfigError


# Moved from tests/http/test_checkpoint_speakers.py, which started it through a live server
# whose create_app raised before it listened.
def test_a_preset_slot_without_speakers_is_a_startup_error(base_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointConfigError, match=r"no preset speakers.*'base'"):
        create_app(load_settings(model_id=str(base_dir), voices_dir=tmp_path))
