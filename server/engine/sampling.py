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

Rows without a seed (most traffic) need the same distribution, not the same random numbers:
with top-k on, they draw among their k candidates only, which spares the work over the whole
vocabulary (masking, softmax, noise and argmax over 2048-3072 entries, sixteen times a
frame) that dominates a frame's sampling cost.
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

    stages: tuple[StageSampling, ...]  # the rows' settings, on the host
    do_sample: torch.Tensor  # bool [B]
    sample_rows: tuple[bool, ...]  # the same, on the host
    temperature: torch.Tensor  # float32 [B, 1]
    top_k: torch.Tensor  # long [B]; 0 = off
    top_k_max: int  # the largest, on the host (reading it from the device would wait for it)
    top_p_floor: torch.Tensor  # float32 [B, 1]: 1 - top_p, computed in double as transformers does
    top_p_on: torch.Tensor  # bool [B, 1]
    any_sample: bool
    any_top_k: bool
    any_top_p: bool

    @classmethod
    def of(cls, stages: list[StageSampling], device: torch.device) -> StageBatch:
        sample = [s.do_sample for s in stages]
        return cls(
            stages=tuple(stages),
            do_sample=torch.tensor(sample, dtype=torch.bool, device=device),
            sample_rows=tuple(sample),
            temperature=torch.tensor([[s.temperature] for s in stages], dtype=torch.float32, device=device),
            top_k=torch.tensor([s.top_k if s.do_sample else 0 for s in stages], dtype=torch.long, device=device),
            top_k_max=max((s.top_k for s in stages if s.do_sample), default=0),
            top_p_floor=torch.tensor([[1 - s.top_p] for s in stages], dtype=torch.float32, device=device),
            top_p_on=torch.tensor([[s.do_sample and s.top_p < 1.0] for s in stages], dtype=torch.bool, device=device),
            any_sample=any(sample),
            any_top_k=any(s.do_sample and s.top_k > 0 for s in stages),
            any_top_p=any(s.do_sample and s.top_p < 1.0 for s in stages),
        )

    def select(self, rows: list[int]) -> StageBatch:
        """The settings of some of the rows, in the order given."""
        return StageBatch.of([self.stages[row] for row in rows], self.do_sample.device)


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
        largest = torch.topk(scores, min(stage.top_k_max, scores.shape[-1]), dim=-1).values  # as a sort gives them
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
    others. A row with a generator draws exactly as the package would (noise over the whole
    vocabulary from its own generator); a row without one draws the same distribution more
    cheaply, among its top-k candidates when top-k is on. Returns long [B]."""
    rows = range(len(generators))
    among_top_k = [
        row for row in rows if stage.sample_rows[row] and generators[row] is None and stage.stages[row].top_k > 0
    ]
    if len(among_top_k) == len(generators):  # the common case: no seed, default settings
        return _draw_among_top_k(processed, stage)
    tokens = processed.argmax(dim=-1)
    if among_top_k:
        index = torch.tensor(among_top_k, dtype=torch.long, device=processed.device)
        tokens[index] = _draw_among_top_k(processed[index], stage.select(among_top_k))
    exact = [row for row in rows if stage.sample_rows[row] and row not in among_top_k]
    if exact:
        index = torch.tensor(exact, dtype=torch.long, device=processed.device)
        tokens[index] = draw_over_vocabulary(processed[index], stage.select(exact), [generators[r] for r in exact])
    return tokens


def draw_over_vocabulary(
    processed: torch.Tensor, stage: StageBatch, generators: list[torch.Generator | None]
) -> torch.Tensor:
    """Sampling rows, as torch.multinomial draws: noise over the whole vocabulary, from the
    row's own generator, or for rows without one (top-k off) from the process-wide generator."""
    probs = warp(processed, stage).softmax(dim=-1)
    noise = torch.ones_like(probs)
    shared = [row for row, generator in enumerate(generators) if generator is None]
    if shared:
        noise[shared] = _exponential_noise((len(shared), probs.shape[-1]), probs)
    for row, generator in enumerate(generators):
        if generator is not None:
            noise[row].exponential_(1, generator=generator)
    return (probs / noise).argmax(dim=-1)


def _draw_among_top_k(processed: torch.Tensor, stage: StageBatch) -> torch.Tensor:
    """Rows that sample with top-k on and without a generator: temperature, top-k and top-p
    applied to each row's k largest logits, as `warp` applies them to the whole vocabulary
    (the entries top-k removes get no probability either way), then one draw among them.
    Boundary ties are the one difference: `warp` keeps every logit equal to the k-th, this
    keeps k of them."""
    top_k = stage.top_k.clamp(max=processed.shape[-1])
    values, indices = torch.topk(processed, min(stage.top_k_max, processed.shape[-1]), dim=-1)  # largest first
    values = values / stage.temperature
    kth = values.gather(1, (top_k - 1).unsqueeze(1))
    values = values.masked_fill(values < kth, -math.inf)
    if stage.any_top_p:
        # transformers' top-p walks the sorted probabilities from the smallest up.
        ascending = values.flip(-1)
        cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
        remove = cumulative <= stage.top_p_floor
        remove[..., -1:] = False  # keep at least one token
        values = ascending.masked_fill(remove & stage.top_p_on, -math.inf).flip(-1)
    probs = values.softmax(dim=-1)
    choice = (probs / _exponential_noise(probs.shape, probs)).argmax(dim=-1, keepdim=True)
    return indices.gather(1, choice).squeeze(1)


def _exponential_noise(shape: tuple[int, ...] | torch.Size, like: torch.Tensor) -> torch.Tensor:
    """Exp(1) noise from the process-wide generator, as -log(U): a fifth of exponential_'s
    cost on the CPU. U is kept away from 0 so the noise stays finite and positive."""
    uniform = torch.rand(shape, dtype=like.dtype, device=like.device)
    return uniform.clamp_(min=torch.finfo(like.dtype).tiny).log_().neg_()


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
