"""The warm-up that follows a GPU load (short generations through the frame loop's own
modules) must hand only codec codes to the codec, even when the talker's greedy first token
is a control id, as random weights (and nothing forbids real ones) can make it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from server.engine.prompt import PieceText
from server.engine.slots.qwen import LoopLimits, QwenBackend


def test_warmup_survives_a_talker_that_prefers_a_control_id(custom_voice_dir: Path) -> None:
    # Its own backend, not the session's: a hook on the codec head changes what it generates.
    backend = QwenBackend.load(str(custom_voice_dir), "cpu", 1, LoopLimits(max_batch=1, max_length=512))
    control = backend.frames.codebook_size + 1  # a control id the codec has no code for

    def prefer_control(module: Any, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        boosted = output.clone()
        boosted[..., control] += 1e4
        return boosted

    handle = backend.frames.talker.codec_head.register_forward_hook(prefer_control)
    try:
        with torch.inference_mode():
            prompt = backend.prompts.build(PieceText(text="Hello.", language="Auto", speaker=backend.speakers[0]))
            assert int(backend.frames.prefill(prompt.embeds).logits.argmax()) == control  # the case is real
            backend.warmup()  # an out-of-range codebook lookup raised here before
    finally:
        handle.remove()
        backend.release()
