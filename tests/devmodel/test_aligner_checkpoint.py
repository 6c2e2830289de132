"""The dev forced-aligner checkpoint loads through the real qwen_asr package and runs its real
alignment path: processor, audio encoder, text model, timestamp head, monotonicity repair."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from server.__main__ import main as server_main
from server.devmodel import main
from server.devmodel.aligner import (
    CLASSIFY_NUM,
    TIMESTAMP_CLASSES,
    TIMESTAMP_SEGMENT_MS,
    aligner_config,
    build_aligner_checkpoint,
)
from server.engine.slots.asr_package import (
    ForcedAlignItem,
    Qwen3ASRForConditionalGeneration,
    Qwen3ForcedAligner,
    normalize_audios,
)

# The aligner's own rate: the package resamples anything else with librosa, whose first call
# compiles numba kernels (half a minute in a fresh environment); the server hands it 16 kHz.
SAMPLE_RATE = 16_000
CHECKPOINT_FILES = ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json")
ENGLISH = "Hello, world! This is a test of the speech server, isn't it?"
CJK_MIX = "你好 world! 我们有三只猫, said the 3 cats."
TEXTS = [(ENGLISH, "English"), (CJK_MIX, "Chinese"), ("3 cats", "English")]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The tiny model gains nothing from intra-op threads; on a busy 2-core machine they cost ~100x."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# aligner_checkpoint: the session's tiny dev aligner (tests/conftest.py, seed 0).


def _load(directory: Path) -> Qwen3ForcedAligner:
    return Qwen3ForcedAligner.from_pretrained(str(directory), dtype=torch.float32)


@pytest.fixture(scope="module")
def aligner(aligner_checkpoint: Path) -> Qwen3ForcedAligner:
    return _load(aligner_checkpoint)


def _noise(seconds: float, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)


def _align(aligner: Qwen3ForcedAligner, text: str, language: str, seconds: float = 2.0) -> list[ForcedAlignItem]:
    results = aligner.align(audio=(_noise(seconds), SAMPLE_RATE), text=text, language=language)
    assert len(results) == 1
    return list(results[0].items)


def _head_ms(aligner: Qwen3ForcedAligner, text: str, language: str, seconds: float = 2.0) -> list[int]:
    """The head's raw choice at every `<timestamp>`, in ms, before the package repairs the order."""
    _, prompt = aligner.aligner_processor.encode_timestamp(text, language)
    inputs = aligner.processor(
        text=[prompt], audio=normalize_audios((_noise(seconds), SAMPLE_RATE)), return_tensors="pt", padding=True
    )
    with torch.inference_mode():
        classes = aligner.model.thinker(**inputs.to(aligner.model.dtype)).logits.argmax(dim=-1)[0]
    picked = classes[inputs["input_ids"][0] == aligner.timestamp_token_id]
    return [int(c) * TIMESTAMP_SEGMENT_MS for c in picked.tolist()]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_loads_as_a_forced_aligner_through_the_package(aligner: Qwen3ForcedAligner) -> None:
    assert isinstance(aligner.model, Qwen3ASRForConditionalGeneration)
    assert aligner.model.dtype == torch.float32
    assert (
        aligner.model.thinker.lm_head.out_features == TIMESTAMP_CLASSES["tiny"]
    )  # a timestamp classifier, not a vocabulary
    assert aligner.timestamp_segment_time == TIMESTAMP_SEGMENT_MS
    tokenizer = aligner.processor.tokenizer
    assert aligner.timestamp_token_id == tokenizer.convert_tokens_to_ids("<timestamp>")
    assert aligner.model.config.thinker_config.audio_token_id == tokenizer.convert_tokens_to_ids("<|audio_pad|>")
    features = aligner.processor.feature_extractor
    assert (features.sampling_rate, features.feature_size) == (16_000, 128)
    assert "english" in aligner.get_supported_languages()


def test_prompt_special_tokens_stay_atomic_after_the_packages_tokenizer_fix(aligner: Qwen3ForcedAligner) -> None:
    # from_pretrained passes fix_mistral_regex=True, which swaps the pre-tokeniser's regex.
    tokenizer = aligner.processor.tokenizer
    ids = tokenizer("<|audio_start|><|audio_pad|><|audio_end|>cats<timestamp><timestamp>")["input_ids"]
    names = ["<|audio_start|>", "<|audio_pad|>", "<|audio_end|>"]
    assert ids[:3] == tokenizer.convert_tokens_to_ids(names)
    assert ids[-2:] == [aligner.timestamp_token_id] * 2


@pytest.mark.parametrize(("text", "language"), TEXTS, ids=["english", "cjk-mix", "number"])
def test_one_item_per_processor_word_in_order(aligner: Qwen3ForcedAligner, text: str, language: str) -> None:
    words, _ = aligner.aligner_processor.encode_timestamp(text, language)
    items = _align(aligner, text, language)
    assert [item.text for item in items] == words
    assert len(words) >= 2


def test_the_processor_splits_cjk_per_character_and_keeps_numbers(aligner: Qwen3ForcedAligner) -> None:
    words = [item.text for item in _align(aligner, CJK_MIX, "Chinese")]
    assert words == ["你", "好", "world", "我", "们", "有", "三", "只", "猫", "said", "the", "3", "cats"]
    assert [item.text for item in _align(aligner, "3 cats", "English")] == ["3", "cats"]


@pytest.mark.parametrize(("text", "language"), TEXTS, ids=["english", "cjk-mix", "number"])
def test_times_are_the_packages_arithmetic_on_80_ms_classes(
    aligner: Qwen3ForcedAligner, text: str, language: str
) -> None:
    raw = _head_ms(aligner, text, language)
    words, _ = aligner.aligner_processor.encode_timestamp(text, language)
    assert len(raw) == 2 * len(words)  # a start and an end per word
    assert all(
        0 <= ms < TIMESTAMP_CLASSES["tiny"] * TIMESTAMP_SEGMENT_MS and ms % TIMESTAMP_SEGMENT_MS == 0 for ms in raw
    )
    repaired = aligner.aligner_processor.fix_timestamp(np.array(raw))
    expected = [(round(repaired[2 * i] / 1000, 3), round(repaired[2 * i + 1] / 1000, 3)) for i in range(len(words))]
    assert [(item.start_time, item.end_time) for item in _align(aligner, text, language)] == expected


@pytest.mark.parametrize(("text", "language"), TEXTS, ids=["english", "cjk-mix", "number"])
def test_times_are_finite_non_negative_and_monotone_after_repair(
    aligner: Qwen3ForcedAligner, text: str, language: str
) -> None:
    items = _align(aligner, text, language)
    times = [t for item in items for t in (item.start_time, item.end_time)]
    assert all(math.isfinite(t) and t >= 0 for t in times)
    assert all(item.start_time <= item.end_time for item in items)
    assert times == sorted(times)  # each word starts no earlier than the previous one ended
    # Whole milliseconds: bins of 80 ms, or (for a run of 3+ out-of-order bins) the repair's
    # integer interpolation between two bins.
    assert all(abs(t * 1000 - round(t * 1000)) < 1e-6 for t in times)


def test_random_head_is_not_monotone_so_the_repair_runs(aligner: Qwen3ForcedAligner) -> None:
    raw = _head_ms(aligner, ENGLISH, "English")
    assert len(set(raw)) >= 3, "the head should pick varied classes"
    assert raw != sorted(raw), "the raw choices should need the package's monotonicity repair"


def test_longer_audio_gives_the_same_words(aligner: Qwen3ForcedAligner) -> None:
    words = [item.text for item in _align(aligner, ENGLISH, "English", seconds=0.5)]
    assert [item.text for item in _align(aligner, ENGLISH, "English", seconds=12.0)] == words


def test_same_seed_gives_identical_files_and_times(aligner_checkpoint: Path, tmp_path: Path) -> None:
    again = build_aligner_checkpoint(tmp_path / "again", "tiny", seed=0)
    other = build_aligner_checkpoint(tmp_path / "other", "tiny", seed=1)
    for name in CHECKPOINT_FILES:
        assert _sha256(again / name) == _sha256(aligner_checkpoint / name), name
    assert _sha256(other / "model.safetensors") != _sha256(aligner_checkpoint / "model.safetensors")
    first, second = _load(aligner_checkpoint), _load(again)
    for text, language in TEXTS:
        assert _align(first, text, language) == _align(second, text, language)


def test_full_size_config_has_the_released_dimensions() -> None:
    config = aligner_config("full")
    thinker = config.thinker_config
    assert thinker.model_type == "qwen3_forced_aligner" and thinker.classify_num == CLASSIFY_NUM
    assert (config.timestamp_token_id, config.timestamp_segment_time) == (151705, 80)
    assert (thinker.audio_token_id, thinker.audio_start_token_id) == (151676, 151669)
    audio, text = thinker.audio_config, thinker.text_config
    assert (audio.encoder_layers, audio.d_model, audio.encoder_attention_heads, audio.encoder_ffn_dim) == (
        24,
        1024,
        16,
        4096,
    )
    assert (audio.num_mel_bins, audio.n_window, audio.n_window_infer, audio.output_dim) == (128, 50, 800, 1024)
    assert (text.num_hidden_layers, text.hidden_size, text.num_attention_heads, text.num_key_value_heads) == (
        28,
        1024,
        16,
        8,
    )
    assert (text.head_dim, text.intermediate_size, text.vocab_size) == (128, 3072, 152064)
    assert text.tie_word_embeddings is False


def test_cli_builds_an_aligner(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "cli"), "--kind", "aligner", "--seed", "3"]) == 0
    assert "built tiny aligner dev checkpoint (seed 3)" in capsys.readouterr().out
    assert server_main(["devmodel", str(tmp_path / "server-cli"), "--kind", "aligner", "--seed", "3"]) == 0
    assert _sha256(tmp_path / "cli" / "model.safetensors") == _sha256(tmp_path / "server-cli" / "model.safetensors")
    items = _align(_load(tmp_path / "cli"), "3 cats", "English")
    assert [item.text for item in items] == ["3", "cats"]


@pytest.mark.parametrize("option", [["--speakers", "anna"], ["--behaviour", "stop"], ["--eos-bias", "1.5"]])
def test_cli_rejects_speech_options_for_the_aligner(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: list[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([str(tmp_path / "cli"), "--kind", "aligner", *option])
    assert exited.value.code == 2
    assert f"{option[0]} applies to the speech kinds only, not to --kind aligner" in capsys.readouterr().err
    assert not (tmp_path / "cli").exists()
