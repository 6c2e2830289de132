"""The adapter over `qwen_tts`: the only module that imports or calls the model package.

Everything here runs on the inference thread, except `resolve_device`.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import io
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from server.engine.errors import InvalidSynthesisInput, JobCancelledError, SynthesisError
from server.engine.jobs import SAMPLES_PER_FRAME, CloneVoice

log = logging.getLogger("qwen3-tts.engine")

# Texts of a few lengths, so a GPU's kernels and allocator are warm for short and long inputs.
WARMUP_TEXTS = (
    "Hello.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Warming up the speech model with a longer sentence lets the GPU pick its kernels "
    "and size its caches before the first real request arrives, so that request is fast.",
)
WARMUP_MAX_NEW_TOKENS = 48
# Bumped when the layout written by QwenBackend.save_prompt changes.
PROMPT_FORMAT_VERSION = 1


def resolve_device(setting: str) -> str:
    """`auto` means cuda when a GPU is visible, else cpu."""
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return setting


def _dtype_for(device: str) -> torch.dtype:
    # bf16 halves memory and doubles throughput on GPUs; CPUs run bf16 slowly, so fp32 there.
    return torch.bfloat16 if device.startswith("cuda") else torch.float32


@dataclass(frozen=True)
class SpeechInput:
    """One text to speak and the voice to speak it in."""

    text: str
    language: str
    speaker: str | None = None
    instruct: str | None = None
    clone: CloneVoice | None = None


@dataclass(frozen=True)
class Generated:
    pcm: np.ndarray
    input_tokens: int
    output_frames: int


class _FrameWatch:
    """A forward pre-hook on the talker: it runs once per generated frame, so it is where a
    cancelled job stops (the package's generate() takes no stopping criteria) and where
    the caller learns that work is progressing (to keep the model from idling out)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def arm(self, should_stop: Callable[[], bool], on_frame: Callable[[], None]) -> None:
        self._local.should_stop = should_stop
        self._local.on_frame = on_frame

    def disarm(self) -> None:
        self._local.should_stop = None
        self._local.on_frame = None

    def __call__(self, module: torch.nn.Module, args: Any) -> None:
        should_stop = getattr(self._local, "should_stop", None)
        if should_stop is not None and should_stop():
            raise JobCancelledError("job cancelled")
        on_frame = getattr(self._local, "on_frame", None)
        if on_frame is not None:
            on_frame()


class QwenBackend:
    """A loaded Qwen3-TTS model and what the server needs to know about it."""

    def __init__(self, model: Any, model_id: str, device: str) -> None:
        self._model = model
        self.model_id = model_id
        self.device = device
        inner = model.model
        self.kind: str = str(inner.tts_model_type)
        self.size: str = str(inner.tts_model_size)
        speakers = model.get_supported_speakers() or []
        self.speakers: tuple[str, ...] = tuple(sorted(speakers))
        self.languages: tuple[str, ...] = tuple(model.get_supported_languages() or ())
        # The package drops `instruct` when tts_model_size is a substring of "0b6" (the 0.6B models).
        self.honours_instruct: bool = self.kind == "custom_voice" and self.size not in "0b6"
        self._watch = _FrameWatch()
        self._hook = inner.talker.register_forward_pre_hook(self._watch)

    @classmethod
    def load(cls, model_id: str, device: str, threads: int = 0) -> QwenBackend:
        model_class = import_model_package()
        if threads > 0:
            # Process-wide; small models on few cores run faster with fewer threads.
            torch.set_num_threads(threads)
        if device.startswith("cuda"):
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        model = model_class.from_pretrained(
            model_id,
            device_map=device,
            dtype=_dtype_for(device),
            attn_implementation="sdpa",
            low_cpu_mem_usage=True,
        )
        # transformers warns on every call when pad_token_id is unset and then pads with the
        # end-of-speech id; setting that same id up front keeps behaviour and the logs quiet.
        talker = model.model.talker
        talker.generation_config.pad_token_id = model.model.config.talker_config.codec_eos_token_id
        return cls(model, model_id, device)

    def warmup(self) -> None:
        """Run a few short generations so the first real request does not pay for kernel selection."""
        speaker = self.speakers[0] if self.speakers else None
        for text in WARMUP_TEXTS:
            if self.kind == "custom_voice" and speaker is not None:
                self._model.generate_custom_voice(
                    text=text, speaker=speaker, language="Auto", max_new_tokens=WARMUP_MAX_NEW_TOKENS
                )

    def count_input_tokens(self, text: str) -> int:
        encoded = self._model.processor(text=text, return_tensors="pt")
        return int(encoded["input_ids"].shape[-1])

    def generate(
        self,
        inputs: Sequence[SpeechInput],
        *,
        max_new_tokens: int,
        seed: int | None,
        should_stop: Callable[[], bool],
        on_frame: Callable[[], None],
    ) -> list[Generated]:
        """Synthesise one or several inputs in one model call (the package's list API pads
        them to a batch). Results come back in input order."""
        if seed is not None:
            torch.manual_seed(seed)
        self._watch.arm(should_stop, on_frame)
        try:
            with torch.inference_mode():
                wavs = self._call_model(inputs, max_new_tokens)
        except JobCancelledError:
            raise
        except ValueError as exc:  # the package validates speakers and languages with ValueError
            raise InvalidSynthesisInput(str(exc)) from exc
        except Exception as exc:
            raise SynthesisError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            self._watch.disarm()
        results = []
        for item, wav in zip(inputs, wavs, strict=True):
            # Copy: the returned array may view a buffer the model frees or reuses, which once
            # cut the tail off the audio while it was being encoded.
            pcm = np.array(wav, dtype=np.float32, copy=True).reshape(-1)
            frames = round(pcm.shape[0] / SAMPLES_PER_FRAME)
            results.append(Generated(pcm=pcm, input_tokens=self.count_input_tokens(item.text), output_frames=frames))
        return results

    def _call_model(self, inputs: Sequence[SpeechInput], max_new_tokens: int) -> list[np.ndarray]:
        texts = [item.text for item in inputs]
        languages = [item.language for item in inputs]
        if self.kind == "custom_voice":
            if any(item.speaker is None for item in inputs):
                raise InvalidSynthesisInput("a preset speaker is required by this model")
            instructs = [item.instruct or "" for item in inputs]
            wavs, _ = self._model.generate_custom_voice(
                text=texts,
                speaker=[item.speaker for item in inputs],
                language=languages,
                instruct=instructs if any(instructs) else None,
                max_new_tokens=max_new_tokens,
            )
            return list(wavs)
        if self.kind == "base":
            prompts = []
            for item in inputs:
                if item.clone is None:
                    raise InvalidSynthesisInput("a cloned voice is required by this model")
                prompts.extend(item.clone.prompt if item.clone.prompt is not None else self.clone_prompt(item.clone))
            wavs, _ = self._model.generate_voice_clone(
                text=texts, language=languages, voice_clone_prompt=prompts, max_new_tokens=max_new_tokens
            )
            return list(wavs)
        raise SynthesisError(f"model kind {self.kind!r} is not served")

    def clone_prompt(self, clone: CloneVoice) -> Any:
        """Compute the reusable clone prompt from a decoded reference (never a path or URL)."""
        if clone.reference is None:
            raise InvalidSynthesisInput("a reference recording is required to clone a voice")
        audio, rate = clone.reference
        with torch.inference_mode():
            return self._model.create_voice_clone_prompt(
                ref_audio=(audio, rate),
                ref_text=clone.ref_text or None,
                x_vector_only_mode=not clone.ref_text,
            )

    def save_prompt(self, prompt: Any, path: Path) -> None:
        """Write a clone prompt to `path` atomically (temp file, then rename), as plain tensors
        and values, so loading it never unpickles arbitrary objects."""
        items = [
            {
                "ref_code": None if item.ref_code is None else item.ref_code.detach().cpu(),
                "ref_spk_embedding": item.ref_spk_embedding.detach().cpu(),
                "x_vector_only_mode": bool(item.x_vector_only_mode),
                "icl_mode": bool(item.icl_mode),
                "ref_text": item.ref_text,
            }
            for item in prompt
        ]
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            torch.save({"version": PROMPT_FORMAT_VERSION, "items": items}, temporary)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)

    def load_prompt(self, path: Path) -> Any:
        """Read a prompt written by `save_prompt` onto this model's device. Raises
        SynthesisError when the file is unreadable or not a prompt this model can use."""
        from qwen_tts.inference.qwen3_tts_model import VoiceClonePromptItem

        try:
            # weights_only: tensors and plain values only; a tampered file cannot run code.
            data = torch.load(path, map_location=self.device, weights_only=True)
            if data.get("version") != PROMPT_FORMAT_VERSION:
                raise ValueError(f"unknown prompt format {data.get('version')!r}")
            return [VoiceClonePromptItem(**item) for item in data["items"]]
        except Exception as exc:
            raise SynthesisError(f"clone prompt {path.name} could not be loaded: {type(exc).__name__}: {exc}") from exc

    def release(self) -> None:
        """Drop the model and give its memory back (only at unload, never per request)."""
        import gc

        self._hook.remove()
        self._model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
            torch.cuda.ipc_collect()  # type: ignore[no-untyped-call]
        trim_native_heap()


def trim_native_heap() -> None:
    """Give freed heap memory back to the OS. glibc keeps what a model's weights and
    activations freed in its arenas (one per thread that allocated, the inference thread's
    included); without this, resident memory after an unload stayed about 8 MB higher on the
    tiny checkpoint and drifted from cycle to cycle. A no-op where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


def gpu_memory() -> dict[str, Any] | None:
    """GPU name and memory in MiB, or None without a GPU."""
    if not torch.cuda.is_available():
        return None
    free, total = torch.cuda.mem_get_info()
    return {
        "name": torch.cuda.get_device_name(),
        "allocated_mib": round(torch.cuda.memory_allocated() / 2**20, 1),
        "reserved_mib": round(torch.cuda.memory_reserved() / 2**20, 1),
        "free_mib": round(free / 2**20, 1),
        "total_mib": round(total / 2**20, 1),
    }


def timed_load(model_id: str, device: str, warmup: bool, threads: int = 0) -> tuple[QwenBackend, float]:
    started = time.perf_counter()
    backend = QwenBackend.load(model_id, device, threads)
    if warmup and device.startswith("cuda"):
        backend.warmup()
    return backend, time.perf_counter() - started


@functools.cache
def import_model_package() -> Any:
    """Import the package once (about 10 s of CPU), on first load rather than at startup.

    It prints notices to stdout while importing (a banner, a flash-attn hint); they are
    captured and logged, so JSON logs stay one object per line. transformers' own log
    records are routed through the server's handlers for the same reason."""
    import transformers

    transformers.utils.logging.disable_default_handler()
    transformers.utils.logging.enable_propagation()
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        from qwen_tts import Qwen3TTSModel
    printed = " ".join(line.strip() for line in captured.getvalue().splitlines() if line.strip().strip("*"))
    if printed:
        log.info("model package notice", extra={"notice": printed})
    return Qwen3TTSModel
