"""The dev checkpoints load through the real qwen_tts package and run its real generate/decode path."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from qwen_tts import Qwen3TTSModel

from server.devmodel import SPEAKERS, build_dev_checkpoint, main, model_config

SAMPLE_RATE = 24_000
SAMPLES_PER_FRAME = 1920
SENTENCE = "Hello, this is a test of the speech server."
WEIGHT_FILES = ("model.safetensors", "speech_tokenizer/model.safetensors")


def _load(directory: Path) -> Qwen3TTSModel:
    return Qwen3TTSModel.from_pretrained(
        str(directory), device_map="cpu", dtype=torch.float32, attn_implementation="sdpa"
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _frames(wav: np.ndarray) -> int:
    assert wav.shape[0] % SAMPLES_PER_FRAME == 0
    return wav.shape[0] // SAMPLES_PER_FRAME


def _assert_audible(wavs: list[np.ndarray], sample_rate: int) -> None:
    assert sample_rate == SAMPLE_RATE
    for wav in wavs:
        assert wav.dtype == np.float32 and wav.ndim == 1
        assert 0 < wav.shape[0] < 255 * SAMPLES_PER_FRAME, "should stop by itself before max_new_tokens=256"
        assert np.isfinite(wav).all()
        assert float(np.sqrt(np.mean(wav**2))) > 1e-2


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The tiny models gain nothing from intra-op threads; on a busy 2-core machine they cost ~10x."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# custom_voice_dir and base_dir: the session's dev checkpoints (tests/conftest.py, seed 0).


@pytest.fixture(scope="module")
def custom_voice(custom_voice_dir: Path) -> Qwen3TTSModel:
    return _load(custom_voice_dir)


@pytest.fixture(scope="module")
def base(base_dir: Path) -> Qwen3TTSModel:
    return _load(base_dir)


@pytest.fixture(scope="module")
def reference_audio() -> np.ndarray:
    return (0.1 * np.random.default_rng(0).standard_normal(2 * SAMPLE_RATE)).astype(np.float32)


def test_same_seed_gives_identical_weights(custom_voice_dir: Path, tmp_path: Path) -> None:
    again = build_dev_checkpoint(tmp_path / "again", "custom_voice", seed=0)
    other = build_dev_checkpoint(tmp_path / "other", "custom_voice", seed=1)
    for name in WEIGHT_FILES:
        assert _sha256(again / name) == _sha256(custom_voice_dir / name)
        assert _sha256(other / name) != _sha256(custom_voice_dir / name)


def test_checkpoint_files(custom_voice_dir: Path) -> None:
    config = json.loads((custom_voice_dir / "config.json").read_text())
    assert "model_type" not in config["speaker_encoder_config"]
    assert config["tts_model_type"] == "custom_voice"
    assert config["talker_config"]["codec_eos_token_id"] == 2150
    generation = json.loads((custom_voice_dir / "generation_config.json").read_text())
    assert generation["top_k"] == 50 and generation["temperature"] == 0.9 and generation["do_sample"] is True
    preprocessor = json.loads((custom_voice_dir / "speech_tokenizer" / "preprocessor_config.json").read_text())
    assert preprocessor["sampling_rate"] == SAMPLE_RATE
    size = sum(f.stat().st_size for f in custom_voice_dir.rglob("*") if f.is_file())
    assert size < 20e6


def test_tokenizer_matches_the_package_prompt_slicing(custom_voice: Qwen3TTSModel) -> None:
    tokenizer = custom_voice.processor.tokenizer
    assert len(tokenizer("<|im_start|>assistant\n")["input_ids"]) == 3
    assert len(tokenizer("<|im_end|>\n<|im_start|>assistant\n")["input_ids"]) == 5


@pytest.mark.parametrize("language", ["English", "Auto"])
def test_custom_voice_generates_audible_audio_and_stops(custom_voice: Qwen3TTSModel, language: str) -> None:
    torch.manual_seed(0)
    wavs, sample_rate = custom_voice.generate_custom_voice(
        SENTENCE, speaker="Vivian", language=language, max_new_tokens=256
    )
    _assert_audible(wavs, sample_rate)


def test_every_released_speaker_is_accepted(custom_voice: Qwen3TTSModel) -> None:
    assert custom_voice.get_supported_speakers() == sorted(SPEAKERS)
    for speaker in ("Vivian", "Serena", "Uncle_Fu", "Dylan", "Eric", "Ryan", "Aiden", "Ono_Anna", "Sohee"):
        torch.manual_seed(0)
        wavs, _ = custom_voice.generate_custom_voice("Hi.", speaker=speaker, language="Chinese", max_new_tokens=4)
        assert 0 < _frames(wavs[0]) <= 4


def test_unknown_speaker_is_rejected(custom_voice: Qwen3TTSModel) -> None:
    with pytest.raises(ValueError, match="Unsupported speakers"):
        custom_voice.generate_custom_voice("Hi.", speaker="Nobody", language="English")


def test_seeded_generation_is_deterministic_and_longer_text_speaks_longer(custom_voice: Qwen3TTSModel) -> None:
    def speak(text: str) -> np.ndarray:
        torch.manual_seed(3)
        wavs, _ = custom_voice.generate_custom_voice(text, speaker="Ryan", language="English", max_new_tokens=256)
        return wavs[0]

    short = speak("Hi.")
    assert np.array_equal(short, speak("Hi."))
    long = speak(SENTENCE + " It goes on for a while, with a few more words than the first one.")
    assert _frames(long) > _frames(short) + 10


def test_eos_bias_override_can_disable_stopping(tmp_path: Path) -> None:
    model = _load(build_dev_checkpoint(tmp_path / "endless", "custom_voice", eos_bias=-100.0))
    torch.manual_seed(0)
    wavs, _ = model.generate_custom_voice("Hi.", speaker="Aiden", language="English", max_new_tokens=12)
    assert _frames(wavs[0]) >= 11


def test_full_size_config_has_the_released_dimensions() -> None:
    config = model_config("custom_voice", "full")
    assert config.tts_model_size == "0b6"  # the package then ignores instruct
    assert model_config("custom_voice", "tiny").tts_model_size not in "0b6"  # tiny honours instruct
    talker = config.talker_config
    assert (talker.hidden_size, talker.num_hidden_layers, talker.text_vocab_size) == (1024, 28, 151936)
    assert talker.code_predictor_config.num_hidden_layers == 5


@pytest.mark.parametrize("x_vector_only", [False, True])
def test_base_clones_from_a_prompt(base: Qwen3TTSModel, reference_audio: np.ndarray, x_vector_only: bool) -> None:
    items = base.create_voice_clone_prompt(
        ref_audio=(reference_audio, SAMPLE_RATE), ref_text="This is the reference.", x_vector_only_mode=x_vector_only
    )
    assert items[0].ref_spk_embedding.shape == (32,)
    if x_vector_only:
        assert items[0].ref_code is None
    else:
        assert items[0].ref_code is not None and tuple(items[0].ref_code.shape) == (25, 16)
    torch.manual_seed(0)
    wavs, sample_rate = base.generate_voice_clone(
        text=SENTENCE, language="English", voice_clone_prompt=items, max_new_tokens=256
    )
    _assert_audible(wavs, sample_rate)


def test_base_clones_from_raw_reference_audio(base: Qwen3TTSModel, reference_audio: np.ndarray) -> None:
    torch.manual_seed(0)
    # At the codec's own rate: at another, the package resamples with librosa, whose first call
    # compiles numba kernels (half a minute in a fresh environment) and tests nothing of ours.
    wavs, sample_rate = base.generate_voice_clone(
        "Hello there.",
        "Auto",
        ref_audio=(reference_audio, SAMPLE_RATE),
        ref_text="Reference words.",
        max_new_tokens=256,
    )
    _assert_audible(wavs, sample_rate)


def test_cli_builds_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "cli"), "--kind", "base", "--seed", "2"]) == 0
    assert "tiny base" in capsys.readouterr().out
    assert (tmp_path / "cli" / "speech_tokenizer" / "config.json").is_file()


# ---- the VoiceDesign kind --------------------------------------------------------------


@pytest.fixture(scope="module")
def voice_design(voice_design_dir: Path) -> Qwen3TTSModel:
    return _load(voice_design_dir)


def test_voice_design_checkpoint_is_shaped_like_the_released_one(voice_design: Qwen3TTSModel) -> None:
    model = voice_design.model
    assert (model.tts_model_type, model.tts_model_size) == ("voice_design", "1b7")
    assert model.tts_model_size not in "0b6"  # the package would drop instructions for a 0.6B
    assert not voice_design.get_supported_speakers()  # the voice comes from the description
    assert model.speaker_encoder is None
    # As in the 1.7B models, the talker is wider than the code predictor, which projects down.
    projection = model.talker.code_predictor.small_to_mtp_projection
    assert isinstance(projection, torch.nn.Linear)
    assert (projection.in_features, projection.out_features) == (48, 32)


def test_voice_design_speaks_a_described_voice_and_stops(voice_design: Qwen3TTSModel) -> None:
    def speak(instruct: str) -> np.ndarray:
        torch.manual_seed(5)
        # A short text: three generations through the package's own generate, each frame of
        # which runs the code predictor's inner generate.
        wavs, sample_rate = voice_design.generate_voice_design(
            "Hello there.", instruct=instruct, language="English", max_new_tokens=256
        )
        _assert_audible(wavs, sample_rate)
        return wavs[0]

    warm = speak("A warm, low voice, speaking slowly.")
    assert np.array_equal(warm, speak("A warm, low voice, speaking slowly."))
    assert not np.array_equal(warm, speak("A bright, fast young voice."))  # the description is in the prompt


def test_cli_builds_a_voice_design_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "design"), "--kind", "voice_design"]) == 0
    assert "tiny voice_design" in capsys.readouterr().out
    assert json.loads((tmp_path / "design" / "config.json").read_text())["tts_model_type"] == "voice_design"
