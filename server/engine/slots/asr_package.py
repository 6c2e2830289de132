"""The `qwen-asr` package (the forced aligner), imported without its side effect on floating point.

Importing `qwen_asr` imports nagisa (its Japanese word splitter), which loads DyNet's shared
library; that library is built with -ffast-math, and loading it sets flush-to-zero and
denormals-are-zero in the importing thread's floating-point control register. Every thread
started from that thread afterwards inherits the setting. Left alone, importing the aligner
would silently change the arithmetic of everything after it (the speech frame loop's threads
included) and breaks libraries that check for IEEE-754 subnormals (hypothesis refuses to run).

So every import of the package goes through this module: it imports once, puts the importing
thread's control register back the way it found it (torch.set_flush_denormal clears both
bits), and says so loudly where the platform cannot.
"""

from __future__ import annotations

import logging
import sys

import torch

log = logging.getLogger("qwen3-tts.aligner")


def subnormals_kept() -> bool:
    """Whether this thread's arithmetic still produces IEEE-754 subnormals (no flush-to-zero)."""
    return sys.float_info.min / 2 > 0.0


_kept_before_import = subnormals_kept()

from qwen_asr.core.transformers_backend import (  # noqa: E402 - the state is read before the import
    Qwen3ASRConfig,
    Qwen3ASRForConditionalGeneration,
    Qwen3ASRProcessor,
)
from qwen_asr.inference.qwen3_forced_aligner import (  # noqa: E402
    ForcedAlignItem,
    Qwen3ForceAlignProcessor,
    Qwen3ForcedAligner,
)
from qwen_asr.inference.utils import normalize_audios  # noqa: E402

if _kept_before_import and not subnormals_kept():
    torch.set_flush_denormal(False)
    if not subnormals_kept():
        log.error(
            "importing qwen-asr (nagisa's DyNet library) turned on flush-to-zero in this thread and this "
            "platform cannot turn it off again: subnormal floats read as zero in this process from now on"
        )

__all__ = [
    "ForcedAlignItem",
    "Qwen3ASRConfig",
    "Qwen3ASRForConditionalGeneration",
    "Qwen3ASRProcessor",
    "Qwen3ForceAlignProcessor",
    "Qwen3ForcedAligner",
    "normalize_audios",
    "subnormals_kept",
]
