"""Per-row sampling for the frame loop: every row of a batch carries its own temperature,
top-k, top-p, repetition penalty and random generator, so requests with different settings
(and seeded ones) share one decode step.

The processing order and arithmetic are the package's (transformers' `_sample` with the
processors `generate` builds): logits in fp32, then repetition penalty over the generated
codebook-0 tokens, end-of-speech banned while fewer than `MIN_NEW_TOKENS` were generated,
suppressed ids, then (when sampling) temperature, top-k and top-p, then a draw. A draw is
`torch.multinomial(probs, 1)`, which PyTorch computes as `argmax(probs / q)` with
`q ~ Exp(1)` drawn from the generator; drawing `q` per row from the row's own generator
gives the same token as the package at batch 1 and keeps a seeded row's tokens independent
of what else shares its batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# The package asks transformers for at least two new tokens before end-of-speech.
MIN_NEW_TOKENS = 2


@dataclass(frozen=True)
class StageSampling:
    """One stage's sampling settings (codebook 0, or the code predictor's codebooks)."""

    do_sample: bool
    temperature: float
    top_k: int
    top_p: float


@dataclass(frozen=True)
class RowSampling:
    """A sequence's settings for both stages."""

    talker: StageSampling
    predictor: StageSampling
    repetition_penalty: float


@dataclass
class StageBatch:
    """One stage's settings for the rows of a batch, as tensors (built once per batch)."""

    do_sample: torch.Tensor  # bool [B]
    sample_rows: tuple[bool, ...]  # the same, on the host
    temperature: torch.Tensor  # float32 [B, 1]
    top_k: torch.Tensor  # long [B]; 0 = off
    top_p_floor: torch.Tensor  # float32 [B, 1]: 1 - top_p, computed in double as transformers does
    top_p_on: torch.Tensor  # bool [B, 1]
    any_sample: bool
    any_top_k: bool
    any_top_p: bool

    @classmethod
    def of(cls, stages: list[StageSampling], device: torch.device) -> StageBatch:
        sample = [s.do_sample for s in stages]
        return cls(
            do_sample=torch.tensor(sample, dtype=torch.bool, device=device),
            sample_rows=tuple(sample),
            temperature=torch.tensor([[s.temperature] for s in stages], dtype=torch.float32, device=device),
            top_k=torch.tensor([s.top_k if s.do_sample else 0 for s in stages], dtype=torch.long, device=device),
            top_p_floor=torch.tensor([[1 - s.top_p] for s in stages], dtype=torch.float32, device=device),
            top_p_on=torch.tensor([[s.do_sample and s.top_p < 1.0] for s in stages], dtype=torch.bool, device=device),
            any_sample=any(sample),
            any_top_k=any(s.do_sample and s.top_k > 0 for s in stages),
            any_top_p=any(s.do_sample and s.top_p < 1.0 for s in stages),
        )


def apply_repetition_penalty(scores: torch.Tensor, seen: torch.Tensor, penalty: torch.Tensor) -> torch.Tensor:
    """transformers' RepetitionPenaltyLogitsProcessor per row: seen tokens' logits are divided by
    the penalty when positive and multiplied when negative. `seen` is a bool [B, V] mask and
    `penalty` a float32 [B, 1]; a penalty of 1.0 changes nothing."""
    penalized = torch.where(scores < 0, scores * penalty, scores / penalty)
    return torch.where(seen, penalized, scores)


def ban_tokens(scores: torch.Tensor, ids: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Set the logits of `ids` to -inf, in every row or only where `rows` (bool [B]) is set."""
    banned = torch.zeros(scores.shape[-1], dtype=torch.bool, device=scores.device)
    banned[ids] = True
    mask = banned.unsqueeze(0) if rows is None else banned.unsqueeze(0) & rows.unsqueeze(1)
    return scores.masked_fill(mask, -math.inf)


def warp(scores: torch.Tensor, stage: StageBatch) -> torch.Tensor:
    """Temperature, then top-k, then top-p, each per row, as transformers' warpers compute them.
    Rows that decode greedily are left untouched (they take the argmax of the processed logits)."""
    scores = scores / stage.temperature  # rows without a temperature carry 1.0: exact identity
    if stage.any_top_k:
        k = stage.top_k.clamp(max=scores.shape[-1])
        largest = torch.topk(scores, int(k.max()), dim=-1).values  # the same values a sort gives
        kth = largest.gather(1, (k - 1).clamp(min=0).unsqueeze(1))
        kth = torch.where(k.unsqueeze(1) > 0, kth, torch.full_like(kth, -math.inf))
        scores = scores.masked_fill(scores < kth, -math.inf)
    if stage.any_top_p:
        sorted_logits, sorted_indices = torch.sort(scores, descending=False)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        remove_sorted = cumulative <= stage.top_p_floor
        remove_sorted[..., -1:] = False  # keep at least one token
        remove = remove_sorted.scatter(1, sorted_indices, remove_sorted)
        scores = scores.masked_fill(remove & stage.top_p_on, -math.inf)
    return scores


def draw(processed: torch.Tensor, stage: StageBatch, generators: list[torch.Generator | None]) -> torch.Tensor:
    """One token per row: argmax for greedy rows, a draw from the warped distribution for the
    others, each from its own generator; rows without one (None) draw together from the
    process-wide generator, which is cheaper and needs no repeatability. Returns long [B]."""
    greedy = processed.argmax(dim=-1)
    if not stage.any_sample:
        return greedy
    probs = warp(processed, stage).softmax(dim=-1)
    noise = torch.ones_like(probs)
    sampling = [row for row in range(len(generators)) if stage.sample_rows[row]]
    shared = [row for row in sampling if generators[row] is None]
    if shared:
        # Rows without a seed draw together from the process-wide generator. Exp(1) noise as
        # -log(U) from uniform draws costs a fifth of exponential_ on the CPU; U is kept away
        # from 0 so the noise stays finite and positive.
        uniform = torch.rand(len(shared), probs.shape[-1], device=probs.device).clamp_(
            min=torch.finfo(probs.dtype).tiny
        )
        noise[shared] = uniform.log_().neg_()
    for row in sampling:
        generator = generators[row]
        if generator is not None:  # greedy rows draw nothing, as in the package
            noise[row].exponential_(1, generator=generator)
    sampled = (probs / noise).argmax(dim=-1)
    return torch.where(stage.do_sample, sampled, greedy)


def process_first_codebook(
    logits: torch.Tensor,
    seen: torch.Tensor,
    penalty: torch.Tensor,
    generated: torch.Tensor,
    eos: int,
    suppressed: torch.Tensor,
) -> torch.Tensor:
    """The talker's logits processors in the package's order: repetition penalty over the
    generated tokens (`seen`, bool [B, V]), end-of-speech banned for rows that have generated
    fewer than MIN_NEW_TOKENS (`generated`, long [B]), then the suppressed control ids."""
    scores = apply_repetition_penalty(logits, seen, penalty)
    eos_id = torch.tensor([eos], dtype=torch.long, device=logits.device)
    scores = ban_tokens(scores, eos_id, generated < MIN_NEW_TOKENS)
    return ban_tokens(scores, suppressed)
