"""Build small, randomly initialised Qwen3-TTS checkpoints that the real package loads and runs.

No model hub is reachable from the machines this project is built and tested on, so real weights
never arrive. `build_dev_checkpoint` writes a checkpoint directory from the package's own config
and model classes; `qwen_tts.Qwen3TTSModel.from_pretrained(dir, ...)` then loads it through the
package's normal path, and generate/decode run the real code. Nothing is mocked.

What is real (copied from the released 12 Hz checkpoints):
- architecture and classes: talker + code predictor, speaker encoder (Base kind), 12 Hz codec
  (Mimi encoder + decoder), processor, `generation_config.json` with the released defaults;
- ids: the 9 speakers and their codec ids, the 10 languages and 2 dialects (Dylan speaks
  beijing_dialect, Eric sichuan_dialect, when the language is Chinese or Auto), codec special ids
  (pad 2148, bos 2149, eos 2150, think 2154, nothink 2155, think_bos 2156, think_eos 2157),
  talker vocabulary 3072, 16 code groups of 2048, 24 kHz audio at 1920 samples per frame;
- size "full": the 0.6B dimensions (talker hidden 1024, 28 layers, text vocabulary 151936 with the
  released special-token ids) written in bf16, about 2 GB, for honest timing on a GPU.

What is random or made up:
- all weights (seeded: the same seed gives byte-identical files);
- the text tokenizer: a small hand-built byte-level BPE (tokenizer.py), not Qwen's;
- size "tiny" (default, about 13 MB): hidden 32, 1-2 layers, a 512-row text embedding (479 tokens
  used, the special tokens at small ids right after the BPE vocabulary);
- the Base kind has no preset speakers (empty `spk_id`, as released); its speaker encoder has
  `mel_dim` 128 and `enc_dim` equal to the talker hidden size (the x-vector replaces a speaker
  embedding in the prompt);
- the VoiceDesign kind has no preset speakers either (the voice comes from the instruction) and
  is shaped like the released 1.7B, the only size VoiceDesign ships in: `tts_model_size` "1b7",
  and a talker wider than its code predictor (tiny: 48 against 32), so the code predictor's
  `small_to_mtp_projection` is a real linear layer as in the 1.7B models, not the identity the
  0.6B ones have; "full" keeps the 0.6B dimensions (no 1.7B sizes are copied here), labelled
  "1b7";
- a stop circuit wired into the talker so utterances end by themselves, later for longer texts
  (stop.py explains it; `eos_bias` tunes it);
- audible noise instead of speech (codec.py: randomised codebooks, calibrated gain).

Quirks worked around, and why:
- `tts_model_size`: the package drops `instruct` when `tts_model_size in "0b6"` (a substring
  test). "full" uses "0b6" like the released 0.6B, so instruct is ignored there; "tiny" uses
  "tiny", which is not a substring of "0b6", so the tiny CustomVoice checkpoint honours
  instruct (like the 1.7B) and tests can exercise that path.
- `save_pretrained` writes `"model_type": ""` into `speaker_encoder_config`, which
  `Qwen3TTSConfig` then fails to load; config.json is rewritten without that key.
- The package reads its generate defaults from `generation_config.json`, so it is written with
  the released values (save_pretrained's own version lacks them).
- The talker's rotary embedding indexes `rope_scaling["mrope_section"]`, so it must be present
  (sections summing to head_dim / 2) even in the tiny size.
- The tokenizer's prompt slicing and `fix_mistral_regex` constraints: see tokenizer.py.

Loading: `Qwen3TTSModel.from_pretrained(dir, device_map="cpu", dtype=torch.float32,
attn_implementation="sdpa")`. CLI: `python -m server.devmodel DIR --kind base --size tiny`
(`--kind aligner` builds the word-timestamp aligner instead: aligner.py).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from qwen_tts.core.models import Qwen3TTSConfig, Qwen3TTSForConditionalGeneration, Qwen3TTSProcessor

# By module path: the package re-exports the builder, so naming it would close an import circle.
import server.devmodel.codec as codec
import server.devmodel.tokenizer as text
from server.devmodel.runaway import BEHAVIOURS, DevBehaviour, install_behaviour, quiet_and_loud_codes
from server.devmodel.seeding import checkpoint_dtype, seeded_weights
from server.devmodel.stop import DEFAULT_EOS_BIAS, PROMPT_WEIGHT, install_stop_circuit

DevModelKind = Literal["custom_voice", "base", "voice_design"]
DEV_MODEL_KINDS: tuple[str, ...] = ("custom_voice", "base", "voice_design")
DevModelSize = Literal["tiny", "full"]

# name -> (codec id, dialect or False), as in the released CustomVoice config.
SPEAKERS: dict[str, tuple[int, str | bool]] = {
    "vivian": (3065, False),
    "serena": (3066, False),
    "uncle_fu": (3010, False),
    "dylan": (2878, "beijing_dialect"),
    "eric": (2875, "sichuan_dialect"),
    "ryan": (3061, False),
    "aiden": (2861, False),
    "ono_anna": (2873, False),
    "sohee": (2864, False),
}
LANGUAGES: dict[str, int] = {
    "chinese": 2055,
    "english": 2050,
    "german": 2053,
    "italian": 2070,
    "portuguese": 2071,
    "spanish": 2054,
    "japanese": 2058,
    "korean": 2064,
    "french": 2061,
    "russian": 2069,
    "beijing_dialect": 2074,
    "sichuan_dialect": 2062,
}
CODEC_IDS: dict[str, int] = {
    "codec_pad_id": 2148,
    "codec_bos_id": 2149,
    "codec_eos_token_id": 2150,
    "codec_think_id": 2154,
    "codec_nothink_id": 2155,
    "codec_think_bos_id": 2156,
    "codec_think_eos_id": 2157,
}
# Codec ids for the speakers of a fine-tune-style checkpoint (`--speakers`): a range the
# released config leaves free of languages, special codes and the nine's ids.
_FREE_SPEAKER_IDS = tuple(i for i in range(2900, 3000) if i not in {cid for cid, _ in SPEAKERS.values()})
_SPEAKER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


def custom_speakers(names: Sequence[str]) -> dict[str, tuple[int, str | bool]]:
    """The `spk_id` / `spk_is_dialect` entries of a checkpoint whose speakers are `names`
    (lower-cased, as the package looks them up), each with its own codec id and no dialect."""
    keys = [name.strip().lower() for name in names]
    if not keys:
        raise ValueError("give at least one speaker name")
    for name in keys:
        if not _SPEAKER_NAME.fullmatch(name):
            raise ValueError(f"speaker name {name!r}: letters, digits and '_', starting with a letter, 64 at most")
    if len(set(keys)) != len(keys):
        raise ValueError("speaker names must differ (case does not count)")
    if len(keys) > len(_FREE_SPEAKER_IDS):
        raise ValueError(f"at most {len(_FREE_SPEAKER_IDS)} speakers")
    return {name: (codec_id, False) for name, codec_id in zip(keys, _FREE_SPEAKER_IDS, strict=False)}


GENERATION_DEFAULTS: dict[str, Any] = {
    "do_sample": True,
    "top_k": 50,
    "top_p": 1.0,
    "temperature": 0.9,
    "repetition_penalty": 1.05,
    "subtalker_dosample": True,
    "subtalker_top_k": 50,
    "subtalker_top_p": 1.0,
    "subtalker_temperature": 0.9,
    "max_new_tokens": 8192,
}
_TINY_TEXT_VOCAB = 512

_TALKER: dict[DevModelSize, dict[str, Any]] = {
    "tiny": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 16,
        "text_hidden_size": 32,
        "text_vocab_size": _TINY_TEXT_VOCAB,
        "rope_scaling": {"rope_type": "default", "mrope_section": [3, 3, 2], "interleaved": True},
    },
    "full": {
        "hidden_size": 1024,
        "intermediate_size": 3072,
        "num_hidden_layers": 28,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "text_hidden_size": 2048,
        "text_vocab_size": 151936,
        "rope_scaling": {"rope_type": "default", "mrope_section": [24, 20, 20], "interleaved": True},
    },
}
_CODE_PREDICTOR: dict[DevModelSize, dict[str, Any]] = {
    "tiny": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 16,
    },
    "full": {
        "hidden_size": 1024,
        "intermediate_size": 3072,
        "num_hidden_layers": 5,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "head_dim": 128,
    },
}
_SPEAKER_ENCODER: dict[DevModelSize, dict[str, Any]] = {
    "tiny": {
        "enc_channels": [32, 32, 32, 32, 96],
        "enc_attention_channels": 16,
        "enc_res2net_scale": 4,
        "enc_se_channels": 16,
    },
    "full": {
        "enc_channels": [512, 512, 512, 512, 1536],
        "enc_attention_channels": 128,
        "enc_res2net_scale": 8,
        "enc_se_channels": 128,
    },
}


def special_token_ids(size: DevModelSize) -> text.SpecialTokenIds:
    return text.compact_special_ids() if size == "tiny" else text.RELEASED_SPECIAL_IDS


# The tiny VoiceDesign talker: wider than its code predictor, as in the 1.7B models.
_TINY_1B7_TALKER: dict[str, Any] = {
    **_TALKER["tiny"],
    "hidden_size": 48,
    "intermediate_size": 96,
    "num_attention_heads": 3,
}


def _model_size_label(kind: DevModelKind, size: DevModelSize) -> str:
    """`tts_model_size` as the package reads it: VoiceDesign ships as 1.7B only; "tiny" is not a
    substring of "0b6", so the tiny CustomVoice honours instruct like a 1.7B one."""
    if kind == "voice_design":
        return "1b7"
    return "tiny" if size == "tiny" else "0b6"


def model_config(
    kind: DevModelKind, size: DevModelSize = "tiny", custom: Sequence[str] | None = None
) -> Qwen3TTSConfig:
    """The Qwen3TTSConfig of a dev checkpoint (no weights); `custom` speaker names replace
    the nine, as a fine-tune that trained its own would."""
    talker = _TINY_1B7_TALKER if kind == "voice_design" and size == "tiny" else _TALKER[size]
    if custom is not None and kind != "custom_voice":
        raise ValueError("only the custom_voice kind has preset speakers")
    speakers = (SPEAKERS if custom is None else custom_speakers(custom)) if kind == "custom_voice" else {}
    talker_config = {
        **talker,
        **CODEC_IDS,
        "vocab_size": 3072,
        "num_code_groups": 16,
        "rope_theta": 1_000_000,
        "max_position_embeddings": 32768,
        "hidden_act": "silu",
        "codec_language_id": dict(LANGUAGES),
        "spk_id": {name: codec_id for name, (codec_id, _) in speakers.items()},
        "spk_is_dialect": {name: dialect for name, (_, dialect) in speakers.items()},
        "code_predictor_config": {
            **_CODE_PREDICTOR[size],
            "vocab_size": 2048,
            "num_code_groups": 16,
            "rope_theta": 1_000_000,
            "max_position_embeddings": 65536,
        },
    }
    special = special_token_ids(size)
    return Qwen3TTSConfig(
        talker_config=talker_config,
        speaker_encoder_config={
            **_SPEAKER_ENCODER[size],
            "mel_dim": 128,
            "enc_dim": talker["hidden_size"],
            "sample_rate": codec.SAMPLE_RATE,
        },
        tokenizer_type="qwen3_tts_tokenizer_12hz",
        tts_model_size=_model_size_label(kind, size),
        tts_model_type=kind,
        im_start_token_id=special.im_start,
        im_end_token_id=special.im_end,
        tts_pad_token_id=special.tts_pad,
        tts_bos_token_id=special.tts_bos,
        tts_eos_token_id=special.tts_eos,
        architectures=["Qwen3TTSForConditionalGeneration"],
    )


def _marker_weights(special: text.SpecialTokenIds) -> torch.Tensor:
    """Per text token: 1 for ordinary tokens, PROMPT_WEIGHT for <|im_start|>, 0 for the rest."""
    weights = torch.zeros(max(special.by_name().values()) + 1)
    weights[: text.bpe_vocab_size()] = 1.0
    weights[special.im_start] = PROMPT_WEIGHT
    return weights


def _build_model(
    kind: DevModelKind, size: DevModelSize, eos_bias: float, speakers: Sequence[str] | None = None
) -> Qwen3TTSForConditionalGeneration:
    model = Qwen3TTSForConditionalGeneration(model_config(kind, size, speakers)).eval()
    install_stop_circuit(model, _marker_weights(special_token_ids(size)), eos_bias)
    return model


def _write_model(model: Qwen3TTSForConditionalGeneration, out: Path, dtype: torch.dtype) -> None:
    model.to(dtype).save_pretrained(out)
    config_path = out / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["speaker_encoder_config"].pop("model_type", None)  # "" would not load back
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    generation = json.dumps(GENERATION_DEFAULTS, indent=2)
    (out / "generation_config.json").write_text(generation + "\n", encoding="utf-8")


def build_dev_checkpoint(
    out_dir: str | Path,
    kind: DevModelKind = "custom_voice",
    *,
    size: DevModelSize = "tiny",
    seed: int = 0,
    eos_bias: float | None = None,
    behaviour: DevBehaviour = "stop",
    speakers: Sequence[str] | None = None,
) -> Path:
    """Write a random checkpoint of `kind` to `out_dir` (created if missing) and return its path.
    `behaviour` other than "stop" builds one that never emits end-of-speech (runaway.py);
    `speakers` (custom_voice only) replaces the nine preset speakers with these names."""
    if kind not in DEV_MODEL_KINDS:
        raise ValueError(f"unknown dev model kind {kind!r}")
    if size not in ("tiny", "full"):
        raise ValueError(f"unknown dev model size {size!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dtype = checkpoint_dtype(size)
    with seeded_weights(seed):
        model = _build_model(kind, size, DEFAULT_EOS_BIAS if eos_bias is None else eos_bias, speakers)
        speech = codec.build_codec(size, torch.Generator().manual_seed(seed))
        if behaviour != "stop":
            install_behaviour(model, behaviour, *quiet_and_loud_codes(speech))
        _write_model(model, out, dtype)
        del model
        codec.save_codec(speech, out / "speech_tokenizer", dtype)
    Qwen3TTSProcessor(tokenizer=text.build_text_tokenizer(special_token_ids(size))).save_pretrained(out)
    return out


def directory_size(path: Path) -> int:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


# The CLI's kinds: the speech kinds, and the forced aligner for word timestamps (aligner.py).
CLI_KINDS: tuple[str, ...] = (*DEV_MODEL_KINDS, "aligner")


def main(argv: list[str] | None = None) -> int:
    """CLI: build a dev checkpoint and print what was built."""
    parser = argparse.ArgumentParser(prog="devmodel", description="Build a random Qwen3-TTS dev checkpoint.")
    parser.add_argument("dir", type=Path, help="output directory")
    parser.add_argument("--kind", choices=CLI_KINDS, default="custom_voice")
    parser.add_argument("--size", choices=["tiny", "full"], default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eos-bias", type=float, default=None, help=f"end-of-speech bias (default {DEFAULT_EOS_BIAS})")
    parser.add_argument(
        "--behaviour", choices=BEHAVIOURS, default=None, help="how it ends (runaway tests; default stop)"
    )
    parser.add_argument(
        "--speakers", default=None, help="comma-separated speaker names replacing the nine (custom_voice only)"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.kind == "aligner":
        out = _build_aligner(parser, args)
    else:
        speakers = [name for name in args.speakers.split(",") if name.strip()] if args.speakers is not None else None
        try:
            out = build_dev_checkpoint(
                args.dir,
                args.kind,
                size=args.size,
                seed=args.seed,
                eos_bias=args.eos_bias,
                behaviour=args.behaviour or "stop",
                speakers=speakers,
            )
        except ValueError as exc:
            parser.error(str(exc))
    elapsed = time.perf_counter() - started
    megabytes = directory_size(out) / 1e6
    print(
        f"built {args.size} {args.kind} dev checkpoint (seed {args.seed}) in {out}: {megabytes:.1f} MB, {elapsed:.1f} s"
    )
    return 0


def _build_aligner(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Path:
    """The aligner kind: the speech model's options do not apply to it."""
    speech_only = {"--eos-bias": args.eos_bias, "--behaviour": args.behaviour, "--speakers": args.speakers}
    for option, value in speech_only.items():
        if value is not None:
            parser.error(f"{option} applies to the speech kinds only, not to --kind aligner")
    try:  # qwen-asr is the optional `aligner` extra: import it only for this kind
        from server.devmodel.aligner import build_aligner_checkpoint
    except ImportError as exc:
        parser.error(f"--kind aligner needs the qwen-asr package (the `aligner` extra): {exc}")
    return build_aligner_checkpoint(args.dir, size=args.size, seed=args.seed)


if __name__ == "__main__":
    raise SystemExit(main())
