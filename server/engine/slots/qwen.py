"""The adapter over `qwen_tts`: loading a model and handing its modules to the frame loop
(prompt builder, talker and code predictor, codec decoder), clone prompts, and the sampling
defaults of the checkpoint. The package's `generate_*` is not called for serving.

Everything here runs on the inference thread, except `resolve_device`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import io
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from server.engine.batch import ActiveBatch
from server.engine.device.runtime import DeviceRuntime, cuda_visible, runtime_for
from server.engine.errors import InvalidSynthesisInput, SynthesisError
from server.engine.frame.graphs import FrameGraphs, GraphStatus
from server.engine.frame.guards import GuardBank, GuardLimits
from server.engine.frame.sampling import RowSampling, StageSampling
from server.engine.frame.step import FrameModel
from server.engine.jobs import CloneVoice, SamplingParams, SynthesisJob
from server.engine.prompt import PromptBuilder
from server.engine.sequence import JobStream
from server.engine.slots.quantize import QuantizeMode, quantize_talker
from server.engine.slots.quiet_codes import package_encoder, quiet_codes

log = logging.getLogger("qwen3-tts.engine")

# Texts of a few lengths, so a GPU's kernels and allocator are warm for short and long inputs.
WARMUP_TEXTS = (
    "Hello.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Warming up the speech model with a longer sentence lets the GPU pick its kernels "
    "and size its caches before the first real request arrives, so that request is fast.",
)
WARMUP_FRAMES = 12
# Bumped when the layout written by QwenBackend.save_prompt changes.
PROMPT_FORMAT_VERSION = 1


@dataclass(frozen=True)
class LoopLimits:
    """What the frame loop reserves when a model loads: a row of key/value memory per sequence
    generated together, each up to `max_length` positions (prompt plus frames)."""

    max_batch: int = 8
    max_length: int = 4096
    # On CUDA, capture the frame's graphs at load (CUDA_GRAPHS); ignored on the CPU.
    cuda_graphs: bool = True
    guards: GuardLimits = field(default_factory=GuardLimits)  # the runaway guards (server/engine/frame/guards.py)


def resolve_device(setting: str) -> str:
    """`auto` means cuda when a GPU is visible, else cpu."""
    if setting == "auto":
        return "cuda" if cuda_visible() else "cpu"
    return setting


def _dtype_for(device: str) -> torch.dtype:
    # bf16 halves memory and doubles throughput on GPUs; CPUs run bf16 slowly, so fp32 there.
    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def package_sampling_kwargs(sampling: SamplingParams) -> dict[str, Any]:
    """A request's sampling overrides as the package's generate kwargs: temperature, top-k and
    top-p for both stages (temperature 0 turns sampling off in both), the penalty for codebook 0."""
    kwargs: dict[str, Any] = {}
    if sampling.temperature == 0:
        kwargs.update(do_sample=False, subtalker_dosample=False)
    elif sampling.temperature is not None:
        kwargs.update(temperature=sampling.temperature, subtalker_temperature=sampling.temperature)
    if sampling.top_k is not None:
        kwargs.update(top_k=sampling.top_k, subtalker_top_k=sampling.top_k)
    if sampling.top_p is not None:
        kwargs.update(top_p=sampling.top_p, subtalker_top_p=sampling.top_p)
    if sampling.repetition_penalty is not None:
        kwargs.update(repetition_penalty=sampling.repetition_penalty)
    return kwargs


class QwenBackend:
    """A loaded Qwen3-TTS model, what the server needs to know about it, and the parts the
    frame loop drives."""

    def __init__(self, model: Any, model_id: str, device: str, limits: LoopLimits) -> None:
        self._model = model
        self.model_id = model_id
        self.device = device
        inner = model.model
        self.kind: str = str(inner.tts_model_type)
        self.size: str = str(inner.tts_model_size)
        speakers = model.get_supported_speakers() or []
        self.speakers: tuple[str, ...] = tuple(sorted(speakers))
        self.languages: tuple[str, ...] = tuple(model.get_supported_languages() or ())
        # The package drops `instruct` when tts_model_size is a substring of "0b6" (the 0.6B models);
        # a VoiceDesign model always takes it: the instruction is the voice.
        self.honours_instruct: bool = (self.kind == "custom_voice" and self.size not in "0b6") or (
            self.kind == "voice_design"
        )
        warn_about_generation_settings(model)
        self.prompts = PromptBuilder(model, self.honours_instruct)
        self.frames = FrameModel(model, limits.max_batch, limits.max_length)
        # The runaway guards' state lives beside the frame's (they run inside (A)); the quiet
        # codes come from this checkpoint's own codec encoder.
        quiet = quiet_codes(
            package_encoder(inner.speech_tokenizer), limits.guards.silence_dbfs, self.frames.vocab, self.frames.device
        )
        self.frames.install_guards(GuardBank(limits.guards, limits.max_batch, quiet))
        self.codec_decoder = inner.speech_tokenizer.model.decoder
        self.batch = ActiveBatch(self.frames, self.prompts, self.codec_decoder, self.clone_prompt, limits.max_batch)
        self.limits = limits
        self.graphs: FrameGraphs | None = None
        self.graph_status = GraphStatus(enabled=False)

    @classmethod
    def load(
        cls,
        model_id: str,
        device: str,
        threads: int = 0,
        limits: LoopLimits | None = None,
        quantize: QuantizeMode = "none",
    ) -> QwenBackend:
        model_class = import_model_package()
        if threads > 0:
            # Process-wide; small models on few cores run faster with fewer threads.
            torch.set_num_threads(threads)
        runtime = runtime_for(device)
        runtime.configure()
        model = model_class.from_pretrained(
            model_id,
            device_map=runtime.load_map(device),
            dtype=_dtype_for(device),
            attn_implementation="sdpa",
            low_cpu_mem_usage=True,
        )
        place_model(model, runtime)
        quantize_talker(model, quantize)  # before the frame loop takes the modules
        return cls(model, model_id, device, limits or LoopLimits())

    def row_sampling(self, sampling: SamplingParams) -> RowSampling:
        """A request's sampling over the checkpoint's defaults, merged by the package's own rule."""
        merged = self._model._merge_generate_kwargs(**package_sampling_kwargs(sampling))
        return RowSampling(
            talker=StageSampling(
                do_sample=bool(merged["do_sample"]),
                temperature=float(merged["temperature"]),
                top_k=int(merged["top_k"]),
                top_p=float(merged["top_p"]),
            ),
            predictor=StageSampling(
                do_sample=bool(merged["subtalker_dosample"]),
                temperature=float(merged["subtalker_temperature"]),
                top_k=int(merged["subtalker_top_k"]),
                top_p=float(merged["subtalker_top_p"]),
            ),
            repetition_penalty=float(merged["repetition_penalty"]),
        )

    def warmup(self) -> None:
        """Run a few short greedy generations through the frame loop itself so the first real
        request does not pay for kernel selection and allocator growth."""
        speaker = self.speakers[0] if self.speakers else None
        if self.kind != "custom_voice" or speaker is None:
            return
        sampling = self.row_sampling(SamplingParams(temperature=0))
        loop = asyncio.new_event_loop()  # never run: what the streams deliver is dropped with it
        try:
            for text in WARMUP_TEXTS:
                job = SynthesisJob(
                    slot="custom_voice", segments=(text,), language="Auto", token_cap=WARMUP_FRAMES + 1, speaker=speaker
                )
                sequence = self.batch.start(JobStream(job, 600, loop, max_ahead=10**9), 0.0, sampling)
                while not sequence.finished:
                    self.batch.step()
                    self.batch.emit(lambda _sequence: None)  # the chunks' decode and copies, as served
                self.batch.flush()
        finally:
            loop.close()

    def capture_graphs(self) -> None:
        """On CUDA (CUDA_GRAPHS): capture the frame per bucket, after the warm-up, before any
        request; the batch then replays them. A failed capture runs that bucket eagerly."""
        if not (self.device.startswith("cuda") and self.limits.cuda_graphs):
            return
        self.graphs = FrameGraphs(self.frames)
        self.graph_status = self.graphs.status
        self.graphs.capture()
        self.batch.runner = self.graphs.run
        self.graph_status.codec_captured = self.batch.codec.capture(runtime_for(self.device).capturer())

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
            # Read onto the host, then moved: the tensors go through the same runtime as the
            # model's own, whichever device that is.
            data = torch.load(path, map_location="cpu", weights_only=True)
            if data.get("version") != PROMPT_FORMAT_VERSION:
                raise ValueError(f"unknown prompt format {data.get('version')!r}")
            items = [
                {
                    key: value.to(self.device) if isinstance(value, torch.Tensor) else value
                    for key, value in item.items()
                }
                for item in data["items"]
            ]
            return [VoiceClonePromptItem(**item) for item in items]
        except Exception as exc:
            raise SynthesisError(f"clone prompt {path.name} could not be loaded: {type(exc).__name__}: {exc}") from exc

    def release(self) -> None:
        """Drop the model and give its memory back (only at unload, never per request)."""
        import gc

        self._model = None
        if self.graphs is not None:
            self.graphs.release()
            self.graphs = None
        self.batch.codec.release()
        del self.prompts, self.frames, self.codec_decoder, self.batch
        gc.collect()
        runtime_for(self.device).empty_cache()
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
    if not cuda_visible():
        return None
    return runtime_for("cuda").memory()


def place_model(model: Any, runtime: DeviceRuntime) -> None:
    """Put every parameter and buffer of the model and of its codec on the device (a no-op
    where `device_map` already did), and tell the package's wrappers where they now are."""
    inner = model.model
    codec = inner.speech_tokenizer
    runtime.place(inner)
    runtime.place(codec.model)
    model.device = inner.device
    codec.device = codec.model.device


def timed_load(
    model_id: str,
    device: str,
    warmup: bool,
    threads: int = 0,
    limits: LoopLimits | None = None,
    quantize: QuantizeMode = "none",
) -> tuple[QwenBackend, float]:
    started = time.perf_counter()
    backend = QwenBackend.load(model_id, device, threads, limits, quantize)
    if device.startswith("cuda"):
        with torch.inference_mode():
            if warmup:
                backend.warmup()
            backend.capture_graphs()
    return backend, time.perf_counter() - started


def warn_about_generation_settings(model: Any) -> None:
    """The loop applies the processors the package's generate builds (penalty, minimum length,
    suppressed ids, temperature, top-k, top-p). A checkpoint whose generation configs ask for
    more would sample differently: say so in the log rather than differ silently."""
    talker = model.model.talker
    for name, config in (
        ("talker", talker.generation_config),
        ("code predictor", talker.code_predictor.generation_config),
    ):
        extra = {
            key: getattr(config, key, None)
            for key in ("no_repeat_ngram_size", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff", "bad_words_ids")
            if getattr(config, key, None) not in (None, 0, 0.0, 1.0)
        }
        if name == "code predictor" and getattr(config, "repetition_penalty", 1.0) not in (None, 1.0):
            extra["repetition_penalty"] = config.repetition_penalty
        if extra:
            log.warning("generation settings the frame loop does not apply", extra={"module": name, "settings": extra})


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
