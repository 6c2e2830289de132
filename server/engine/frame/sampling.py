"""Per-row sampling for the frame loop, as tensor operations only: every row of a batch
carries its own temperature, top-k, top-p, repetition penalty and greedy-or-not as device
tensors, and its random numbers come from a counter-based hash of (seed, segment, frame,
codebook, vocabulary id) (server/engine/frame/counter_rng.py). Nothing here reads a value back to
the host, builds a tensor from Python data, or indexes with a boolean mask, so the same code
runs eagerly on the CPU and inside a captured CUDA graph.

The processing order and arithmetic are the package's (transformers' `_sample` with the
processors `generate` builds): logits in fp32, then repetition penalty over the generated
codebook-0 tokens, end-of-speech banned while fewer than `MIN_NEW_TOKENS` were generated,
suppressed ids, then (when sampling) temperature, top-k and top-p, then a draw. Greedy rows
take the argmax of the processed logits, exactly as the package does. A draw is Gumbel-max
over the warped logits: argmax(logit + Gumbel noise) picks each token with its softmax
probability, the distribution `torch.multinomial` samples, with noise that depends only on
the row's own key.

The warpers work on each row's `candidates` largest logits (all of the vocabulary when some
row has top-k off): top-k keeps at most that many, so nothing outside them can be drawn, and
the noise is keyed by vocabulary id, so the token drawn does not depend on how many
candidates the batch looked at.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from server.engine.frame.counter_rng import gumbel

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


class StageTensors:
    """One stage's settings for every row, as device tensors; `rows(n)` gives views of the
    first n (static buffers: their addresses never change)."""

    def __init__(self, rows: int, device: torch.device | str) -> None:
        self.do_sample = torch.zeros(rows, dtype=torch.bool, device=device)
        self.temperature = torch.ones(rows, 1, dtype=torch.float32, device=device)
        self.top_k = torch.zeros(rows, dtype=torch.long, device=device)  # 0 = off
        self.top_p_floor = torch.zeros(rows, 1, dtype=torch.float32, device=device)  # 1 - top_p
        self.top_p_on = torch.zeros(rows, 1, dtype=torch.bool, device=device)

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.do_sample, self.temperature, self.top_k, self.top_p_floor, self.top_p_on)

    def rows(self, count: int) -> StageTensors:
        view = StageTensors.__new__(StageTensors)
        view.do_sample, view.temperature, view.top_k, view.top_p_floor, view.top_p_on = (
            t[:count] for t in self.tensors()
        )
        return view

    def write(self, row: int, stage: StageSampling) -> None:
        """Set one row's settings (between frames, on the host's side), each value a kernel
        argument (fill_), never a blocking copy."""
        self.do_sample[row].fill_(stage.do_sample)
        self.temperature[row, 0].fill_(stage.temperature)
        self.top_k[row].fill_(stage.top_k if stage.do_sample else 0)
        self.top_p_floor[row, 0].fill_(1 - stage.top_p)  # in double, as transformers computes it
        self.top_p_on[row, 0].fill_(stage.do_sample and stage.top_p < 1.0)

    def move(self, source: int, target: int) -> None:
        for tensor in self.tensors():
            tensor[target] = tensor[source]

    @classmethod
    def of(cls, stages: list[StageSampling], device: torch.device | str = "cpu") -> StageTensors:
        """Settings for a list of rows (tests and benchmarks)."""
        tensors = cls(len(stages), device)
        for row, stage in enumerate(stages):
            tensors.write(row, stage)
        return tensors


def uses_top_p(stages: list[StageSampling]) -> bool:
    return any(s.do_sample and s.top_p < 1.0 for s in stages)


def candidates_for(stages: list[StageSampling], vocab: int) -> int:
    """How many of each row's largest logits the warpers must look at: the largest top-k of
    the rows that sample, or the whole vocabulary when one of them has top-k off. Rounded up
    to a power of two, so a batch's changing company gives few distinct shapes."""
    sampling = [s for s in stages if s.do_sample]
    if not sampling:
        return 1
    if any(s.top_k <= 0 for s in sampling):
        return vocab
    largest = max(s.top_k for s in sampling)
    return min(vocab, 1 << (largest - 1).bit_length())


def token_mask(vocab: int, ids: list[int], device: torch.device | str) -> torch.Tensor:
    """A bool [V] mask of `ids`, built once at load (never inside a frame)."""
    mask = torch.zeros(vocab, dtype=torch.bool, device=device)
    if ids:
        mask[torch.tensor(ids, dtype=torch.long, device=device)] = True
    return mask


def apply_repetition_penalty(scores: torch.Tensor, seen: torch.Tensor, penalty: torch.Tensor) -> torch.Tensor:
    """transformers' RepetitionPenaltyLogitsProcessor per row: seen tokens' logits are divided by
    the penalty when positive and multiplied when negative. `seen` is a bool [B, V] mask and
    `penalty` a float32 [B, 1]; a penalty of 1.0 changes nothing."""
    penalized = torch.where(scores < 0, scores * penalty, scores / penalty)
    return torch.where(seen, penalized, scores)


def process_first_codebook(
    logits: torch.Tensor,
    seen: torch.Tensor,
    penalty: torch.Tensor,
    generated: torch.Tensor,
    eos: torch.Tensor,
    suppressed: torch.Tensor,
) -> torch.Tensor:
    """The talker's logits processors in the package's order: repetition penalty over the
    generated tokens (`seen`, bool [B, V]), end-of-speech (`eos`, a bool [V] mask) banned for
    rows that have generated fewer than MIN_NEW_TOKENS (`generated`, long [B]), then the
    suppressed control ids (a bool [V] mask)."""
    scores = apply_repetition_penalty(logits, seen, penalty)
    scores = scores.masked_fill(eos.unsqueeze(0) & (generated < MIN_NEW_TOKENS).unsqueeze(1), -math.inf)
    return scores.masked_fill(suppressed.unsqueeze(0), -math.inf)


def kth_index(stage: StageTensors, candidates: int) -> torch.Tensor:
    """Each row's top-k as an index into its sorted candidates (long [B, 1]; top-k off keeps
    them all); computed once per frame and stage."""
    top_k = torch.where(stage.top_k > 0, stage.top_k, candidates).clamp(max=candidates)
    return (top_k - 1).unsqueeze(1)


def warp_candidates(
    processed: torch.Tensor, stage: StageTensors, candidates: int, kth: torch.Tensor, top_p: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Temperature, top-k and (when `top_p`: some row uses it) top-p per row, as
    transformers' warpers compute them, over each row's `candidates` largest logits. Returns
    the warped logits (largest first, -inf where removed) and their vocabulary ids, both
    [B, candidates]."""
    scores = processed / stage.temperature  # greedy rows carry 1.0: exact identity
    values, ids = torch.topk(scores, candidates, dim=-1)  # sorted, largest first
    threshold = values.gather(1, kth)
    values = values.masked_fill(values < threshold, -math.inf)  # keeps ties with the k-th, as transformers does
    if not top_p:
        return values, ids
    # transformers' top-p walks the sorted probabilities from the smallest up.
    ascending = values.flip(-1)
    cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
    remove = (cumulative <= stage.top_p_floor) & stage.top_p_on
    remove[:, -1].fill_(False)  # keep at least one token (fill_: no tensor from Python data)
    return ascending.masked_fill(remove, -math.inf).flip(-1), ids


def sample(
    processed: torch.Tensor,
    stage: StageTensors,
    key: torch.Tensor,
    candidates: int,
    top_p: bool = True,
    kth: torch.Tensor | None = None,
) -> torch.Tensor:
    """One token per row (long [B]): the argmax of the processed logits for greedy rows, a
    Gumbel-max draw from the warped distribution for the others, with the noise of the row's
    key for this draw (long [B], counter_rng.frame_keys). `top_p` False skips the top-p
    warper (no row uses it); `kth` is kth_index(stage, candidates), when already computed."""
    greedy = processed.argmax(dim=-1)
    if kth is None:
        kth = kth_index(stage, candidates)
    values, ids = warp_candidates(processed, stage, candidates, kth, top_p)
    choice = (values + gumbel(key, ids)).argmax(dim=-1, keepdim=True)
    drawn = ids.gather(1, choice).squeeze(1)
    return torch.where(stage.do_sample, drawn, greedy)
