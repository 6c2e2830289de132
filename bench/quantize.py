"""QUANTIZE side by side in one run: weight memory, milliseconds per frame and codes agreement
of the quantized talker against the unquantized one.

Run from the repository root::

    python bench/quantize.py [--model DIR] [--frames 24] [--repeats 2] [--threads 1] [--device cpu]

Without --model a tiny random checkpoint is built in a temporary directory; for honest
figures build the full-size one first (`qwen3-tts-server devmodel DIR --size full`, 2 GB).
Each mode loads the checkpoint afresh and runs the package's own generate (talker and code
predictor) greedily for exactly --frames frames (no end-of-speech id can match), so every
mode does the same work and the codes can be compared frame by frame:

- weights MB: the talker's linear layers (what QUANTIZE changes), and all of the talker;
- ms/frame: the median over --repeats runs after one warm-up run;
- agreement: the share of frames whose 16 codes all equal the unquantized run's, the share
  of codebook-0 codes that do, and the first frame that differs (greedy decoding feeds each
  frame back, so after the first difference the runs follow different paths); and, free of
  that feedback, the codebook-0 logits of the prefill (the same prompt in every mode):
  their cosine similarity to the unquantized ones and how many of its top 50 codes they share.
  Random weights give nearly flat logits, where the smallest change reorders the top codes:
  the codes agreement on a dev checkpoint is a floor, not what real weights would show.

fp8 runs only on a CUDA GPU of compute capability 8.9 or newer.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.devmodel import build_dev_checkpoint
from server.engine.slots.quantize import QuantizeMode, QuantizeUnsupported, check_quantize_support, linear_weight_bytes
from server.engine.slots.qwen import LoopLimits, QwenBackend

TEXT = "Quantized weights are measured against the full ones on exactly the same sentence."


def weights_mb(module: torch.nn.Module) -> tuple[float, float]:
    linear = linear_weight_bytes(module)
    others = sum(
        p.numel() * p.element_size()
        for name, p in module.named_parameters()
        if not isinstance(module.get_submodule(name.rsplit(".", 1)[0]) if "." in name else module, torch.nn.Linear)
    )
    return linear / 1e6, (linear + others) / 1e6


class _Generated(Exception):
    """Raised once generate has returned, so the package skips decoding the codes."""


def greedy_codes(backend: QwenBackend, frames: int) -> tuple[torch.Tensor, float, torch.Tensor]:
    """The codes of one greedy run, its ms per frame, and the codebook-0 logits of its prefill
    (the same input in every mode, so they compare layer error without feedback)."""
    wrapper = backend._model
    original = wrapper.model.generate
    measured: dict[str, Any] = {}
    head = wrapper.model.talker.codec_head

    def first_logits(_module: Any, _inputs: Any, output: torch.Tensor) -> None:
        measured.setdefault("logits", output[0, -1].detach().float().cpu())

    def timed(*args: Any, **kwargs: Any) -> Any:
        # No end-of-speech id can match: every mode runs exactly `frames` frames (the dev
        # checkpoints are built to stop, at points a small weight change moves).
        kwargs.update(max_new_tokens=frames, do_sample=False, subtalker_dosample=False, eos_token_id=-1)
        if backend.device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        out = original(*args, **kwargs)
        if backend.device.startswith("cuda"):
            torch.cuda.synchronize()
        measured["seconds"] = time.perf_counter() - started
        measured["codes"] = out[0][0].detach().cpu()
        raise _Generated  # the codes are what is measured; the codec is not part of QUANTIZE

    wrapper.model.generate = timed
    hook = head.register_forward_hook(first_logits)
    try:
        with torch.inference_mode(), contextlib.suppress(_Generated):
            wrapper.generate_custom_voice(text=TEXT, speaker="Vivian", language="English")
    finally:
        wrapper.model.generate = original
        hook.remove()
    codes: torch.Tensor = measured["codes"]
    return codes, measured["seconds"] * 1000 / max(codes.shape[0], 1), measured["logits"]


def logits_agreement(logits: torch.Tensor, reference: torch.Tensor, k: int = 50) -> tuple[float, float]:
    """Cosine similarity of two logit vectors and the share of the reference's top-k in theirs."""
    cosine = float(torch.nn.functional.cosine_similarity(logits, reference, dim=0))
    top = set(logits.topk(k).indices.tolist())
    overlap = len(top & set(reference.topk(k).indices.tolist())) / k * 100
    return cosine, overlap


def agreement(codes: torch.Tensor, reference: torch.Tensor) -> tuple[float, float, int | None]:
    n = min(codes.shape[0], reference.shape[0])
    same_frames = (codes[:n] == reference[:n]).all(dim=1)
    differing = (~same_frames).nonzero()
    first = int(differing[0]) if differing.numel() else None
    whole = float(same_frames.float().mean()) * 100
    codebook0 = float((codes[:n, 0] == reference[:n, 0]).float().mean()) * 100
    return whole, codebook0, first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="checkpoint directory (default: build a tiny one)")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--modes", default="none,int8,fp8")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    modes: list[QuantizeMode] = [m for m in ("none", "int8", "fp8") if m in args.modes.split(",")]  # type: ignore[misc]
    with tempfile.TemporaryDirectory() as scratch:
        model = args.model or build_dev_checkpoint(Path(scratch) / "custom_voice", "custom_voice")
        label = "tiny dev checkpoint" if args.model is None else model
        print(f"device: {args.device}  threads: {args.threads}  model: {label}  frames: {args.frames}")
        print(
            f"{'QUANTIZE':>8} | {'linear MB':>9} | {'talker MB':>9} | {'ms/frame':>8} | "
            f"{'frames':>6} | {'frames equal %':>14} | {'codebook 0 %':>12} | {'first diff':>10} | "
            f"{'prefill cos':>11} | {'top-50 %':>8}"
        )
        reference: tuple[torch.Tensor, torch.Tensor] | None = None
        for mode in modes:
            try:
                check_quantize_support(mode, args.device)
            except QuantizeUnsupported as exc:
                print(f"{mode:>8} | skipped: {exc}")
                continue
            limits = LoopLimits(max_batch=1, max_length=args.frames + 512)
            backend = QwenBackend.load(str(model), args.device, args.threads, limits, quantize=mode)
            linear_mb, talker_mb = weights_mb(backend._model.model.talker)
            greedy_codes(backend, args.frames)  # warm-up
            runs = [greedy_codes(backend, args.frames) for _ in range(args.repeats)]
            codes, _, logits = runs[0]
            ms = statistics.median(ms for _, ms, _ in runs)
            backend.release()
            del backend
            if reference is None:
                reference = (codes, logits)
            whole, codebook0, first = agreement(codes, reference[0])
            cosine, overlap = logits_agreement(logits, reference[1])
            print(
                f"{mode:>8} | {linear_mb:>9.1f} | {talker_mb:>9.1f} | {ms:>8.1f} | {codes.shape[0]:>6} | "
                f"{whole:>14.1f} | "
                f"{codebook0:>12.1f} | {'none' if first is None else first:>10} | {cosine:>11.4f} | {overlap:>8.0f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
