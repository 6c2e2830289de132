"""The quiet codes of a checkpoint, for the silence guard (server/engine/frame/guards.py): the
codebook-0 ids its own codec encoder gives audio below a level, found once when a model
loads."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from server.engine.jobs import SAMPLE_RATE


def quiet_audio(dbfs: float, seconds: float = 2.0, seed: int = 0) -> list[np.ndarray]:
    """Audio that counts as quiet at `dbfs`: digital silence, and white noise at that RMS."""
    samples = int(seconds * SAMPLE_RATE)
    rms = 10 ** (dbfs / 20)
    noise = np.random.default_rng(seed).standard_normal(samples).astype(np.float32) * rms
    return [np.zeros(samples, dtype=np.float32), noise]


Encode = Callable[[np.ndarray], Iterable[torch.Tensor]]


def quiet_codes(encode: Encode, dbfs: float, vocab: int, device: torch.device | str) -> torch.Tensor:
    """The quiet table, bool [vocab]: True for the cb0 ids the checkpoint's codec encoder gives
    audio below `dbfs` (`encode` turns 24 kHz audio into codes [T, 16]). Found once when a
    model loads: a couple of seconds of audio through the encoder."""
    table = torch.zeros(vocab, dtype=torch.bool)
    for audio in quiet_audio(dbfs):
        for codes in encode(audio):
            table[codes[:, 0].long().cpu()] = True
    return table.to(device)


def package_encoder(speech_tokenizer: Any) -> Encode:
    """`encode` over the package's speech tokenizer (Qwen3TTSTokenizer)."""

    def encode(audio: np.ndarray) -> Iterable[torch.Tensor]:
        return list(speech_tokenizer.encode(audio, sr=SAMPLE_RATE).audio_codes)

    return encode
