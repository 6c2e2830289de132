"""Build a randomly initialised Qwen3-ForcedAligner checkpoint that the real `qwen_asr` package
loads and runs.

The word timing model (`Qwen/Qwen3-ForcedAligner-0.6B`) never reaches the machines this project is
tested on, so, as for the speech checkpoints (builder.py), `build_aligner_checkpoint` writes one
from the package's own config and model classes. `qwen_asr.inference.qwen3_forced_aligner.
Qwen3ForcedAligner.from_pretrained(dir, dtype=torch.float32)` then loads it through the package's
normal path (AutoConfig / AutoModel / AutoProcessor registered for `qwen3_asr`), and `.align(...)`
runs the real processor, audio encoder, text model and timestamp head. Nothing is mocked.

What is real (as in the released checkpoint's config):
- architecture and classes: `Qwen3ASRForConditionalGeneration` with a thinker whose `model_type`
  is "qwen3_forced_aligner", so its `lm_head` is a classifier of `classify_num` = 5000 classes, one
  per `timestamp_segment_time` = 80 ms bin (400 s; the tiny one has 40, 3.2 s), read at every
  `<timestamp>` token;
- the prompt the package builds: `<|audio_start|><|audio_pad|><|audio_end|>` then each word and two
  `<timestamp>`s; the processor expands `<|audio_pad|>` to one token per audio frame the encoder
  emits (13 per second: the package hard-codes 100-frame windows, so `n_window` must stay 50);
- audio front end: WhisperFeatureExtractor at 16 kHz, 128 mel bins, hop 160 (the package resamples
  any input to 16 kHz first);
- size "full": the released dimensions (audio encoder 24 layers of 1024, text model 28 layers of
  1024 with 16/8 heads of 128, vocabulary 152064, the released special-token ids), written in bf16
  (about 1.2 GB), for timing only.

What is random or made up:
- all weights (seeded: the same seed gives byte-identical files); the times a random head picks are
  arbitrary, anywhere in 0-400 s, and not monotone, so callers' clamping and the package's own
  monotonicity repair (`fix_timestamp`) are exercised on every call;
- the text tokenizer: the speech checkpoints' hand-built byte-level BPE (tokenizer.py), not Qwen's;
- size "tiny" (default, well under 1 MB): audio encoder 1 layer of 16, text model 2 layers of 32, a
  512-row text embedding with the special tokens right after the BPE vocabulary; the text model's
  weights are drawn with std 0.5 instead of the default 0.02, so that attention mixes positions and
  the head's choice varies from word to word (with 0.02 every `<timestamp>` lands on one class).

Quirks worked around, and why:
- `save_pretrained` writes the thinker's class `model_type` ("qwen3_asr_thinker"), which would load
  back as a speech recogniser with a vocabulary-sized head; config.json is rewritten with
  "qwen3_forced_aligner", as the released file has it.
- `from_pretrained` loads the processor with `fix_mistral_regex=True`: see tokenizer.py for why the
  pre-tokeniser must be a sequence.

CLI: `python -m server.devmodel DIR --kind aligner [--size tiny|full]`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from transformers import WhisperFeatureExtractor

# By module path: the package re-exports the builder, which imports this module: naming the
# package would close an import circle.
import server.devmodel.tokenizer as text
from server.devmodel.seeding import checkpoint_dtype, seeded_weights
from server.engine.slots.asr_package import Qwen3ASRConfig, Qwen3ASRForConditionalGeneration, Qwen3ASRProcessor

AlignerSize = Literal["tiny", "full"]

SAMPLE_RATE = 16_000
MEL_BINS = 128
CLASSIFY_NUM = 5000
# The tiny head's classes: 3.2 s of 80 ms bins, about the length of the tiny speech
# checkpoints' sentences, so that random times fall inside the audio (as trained ones do)
# and the server's clamping and ordering are tested on spread-out times, not on one value.
TIMESTAMP_CLASSES: dict[AlignerSize, int] = {"tiny": 40, "full": CLASSIFY_NUM}
TIMESTAMP_SEGMENT_MS = 80
THINKER_MODEL_TYPE = "qwen3_forced_aligner"
SUPPORT_LANGUAGES = (
    "Chinese",
    "Cantonese",
    "English",
    "German",
    "Spanish",
    "French",
    "Italian",
    "Portuguese",
    "Russian",
    "Korean",
    "Japanese",
)
_TINY_TEXT_VOCAB = 512
# The tiny text model's init std (the package's default is 0.02; see the module docstring).
_TINY_TEXT_INIT_STD = 0.5

_AUDIO: dict[AlignerSize, dict[str, Any]] = {
    "tiny": {
        "encoder_layers": 1,
        "encoder_attention_heads": 2,
        "encoder_ffn_dim": 32,
        "d_model": 16,
        "downsample_hidden_size": 8,
    },
    "full": {
        "encoder_layers": 24,
        "encoder_attention_heads": 16,
        "encoder_ffn_dim": 4096,
        "d_model": 1024,
        "downsample_hidden_size": 480,
    },
}
_TEXT: dict[AlignerSize, dict[str, Any]] = {
    "tiny": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 16,
        "vocab_size": _TINY_TEXT_VOCAB,
        "rope_scaling": {"rope_type": "default", "mrope_section": [3, 3, 2], "interleaved": True},
        "initializer_range": _TINY_TEXT_INIT_STD,
    },
    "full": {
        "hidden_size": 1024,
        "intermediate_size": 3072,
        "num_hidden_layers": 28,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "vocab_size": 152064,
        "rope_scaling": {"rope_type": "default", "mrope_section": [24, 20, 20], "interleaved": True},
    },
}


def aligner_token_ids(size: AlignerSize) -> text.AlignerTokenIds:
    return text.compact_aligner_ids() if size == "tiny" else text.RELEASED_ALIGNER_IDS


def aligner_config(size: AlignerSize = "tiny") -> Qwen3ASRConfig:
    """The Qwen3ASRConfig of a dev aligner (no weights)."""
    if size not in ("tiny", "full"):
        raise ValueError(f"unknown dev aligner size {size!r}")
    special = aligner_token_ids(size)
    text_config = {
        **_TEXT[size],
        "hidden_act": "silu",
        "rms_norm_eps": 1e-6,
        "rope_theta": 1_000_000,
        "max_position_embeddings": 65536,
        "tie_word_embeddings": False,
    }
    audio_config = {
        **_AUDIO[size],
        "num_mel_bins": MEL_BINS,
        "max_source_positions": 1500,
        "n_window": 50,  # the processor's token count assumes 100-frame windows
        "n_window_infer": 800,
        "conv_chunksize": 500,
        "activation_function": "gelu",
        "scale_embedding": False,
        "output_dim": text_config["hidden_size"],  # audio frames replace <|audio_pad|> embeddings
    }
    return Qwen3ASRConfig(
        thinker_config={
            "model_type": THINKER_MODEL_TYPE,
            "audio_config": audio_config,
            "text_config": text_config,
            "classify_num": TIMESTAMP_CLASSES[size],
            "audio_token_id": special.audio_pad,
            "audio_start_token_id": special.audio_start,
            "audio_end_token_id": special.audio_end,
            "tie_word_embeddings": False,
        },
        support_languages=list(SUPPORT_LANGUAGES),
        timestamp_token_id=special.timestamp,
        timestamp_segment_time=TIMESTAMP_SEGMENT_MS,
        architectures=["Qwen3ASRForConditionalGeneration"],
    )


def feature_extractor() -> WhisperFeatureExtractor:
    """The released front end: 16 kHz, 128 mel bins, 25 ms windows every 10 ms."""
    return WhisperFeatureExtractor(  # type: ignore[no-untyped-call]
        feature_size=MEL_BINS,
        sampling_rate=SAMPLE_RATE,
        hop_length=160,
        n_fft=400,
        chunk_length=30,
        padding_value=0.0,
        return_attention_mask=True,
    )


def _build_model(size: AlignerSize) -> Qwen3ASRForConditionalGeneration:
    return Qwen3ASRForConditionalGeneration(aligner_config(size)).eval()


def _write_config(out: Path) -> None:
    path = out / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["thinker_config"]["model_type"] = THINKER_MODEL_TYPE  # save_pretrained writes the class's
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def build_aligner_checkpoint(out_dir: str | Path, size: AlignerSize = "tiny", seed: int = 0) -> Path:
    """Write a random forced-aligner checkpoint of `size` to `out_dir` (created if missing) and
    return its path."""
    if size not in ("tiny", "full"):
        raise ValueError(f"unknown dev aligner size {size!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with seeded_weights(seed):
        model = _build_model(size)
        model.to(checkpoint_dtype(size)).save_pretrained(out)
        del model
    _write_config(out)
    tokenizer = text.build_aligner_tokenizer(aligner_token_ids(size))
    Qwen3ASRProcessor(feature_extractor=feature_extractor(), tokenizer=tokenizer).save_pretrained(out)
    return out
