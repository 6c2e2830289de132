"""Per-row sampling against transformers' own logits processors and torch.multinomial: each
row of a mixed batch is processed as the package's generate would process it alone, greedy
rows take its argmax, and sampling rows draw from the warped distribution it would sample
(a chi-square test against the exact probabilities, with torch.multinomial's own draws as
the yardstick), with noise that depends on the row's key alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import chi2
from transformers.generation.logits_process import (
    LogitsProcessorList,
    MinNewTokensLengthLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    SuppressTokensLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from server.engine.frame.counter_rng import keys, uniform
from server.engine.frame.sampling import (
    StageSampling,
    StageTensors,
    candidates_for,
    process_first_codebook,
    sample,
    token_mask,
)

VOCAB = 3072
EOS = 2150
SUPPRESSED = [i for i in range(VOCAB - 1024, VOCAB) if i != EOS]
EOS_MASK = token_mask(VOCAB, [EOS], "cpu")
SUPPRESSED_MASK = token_mask(VOCAB, SUPPRESSED, "cpu")

ROWS = [
    # (do_sample, temperature, top_k, top_p, repetition_penalty, generated so far)
    (True, 0.9, 50, 1.0, 1.05, [5, 17, 17, 900]),
    (True, 1.3, 0, 0.8, 1.0, [3]),
    (False, 1.0, 50, 1.0, 1.4, [1, 2, 3, 4, 5]),
    (True, 0.5, 7, 0.95, 2.0, []),
    (False, 1.0, 1, 1.0, 1.05, [8, 8]),
]


def transformers_scores(logits: torch.Tensor, row: tuple[bool, float, int, float, float, list[int]]) -> torch.Tensor:
    """What transformers' _sample hands to softmax (sampling) or argmax (greedy) for this row."""
    do_sample, temperature, top_k, top_p, penalty, generated = row
    ids = torch.tensor([generated], dtype=torch.long)
    processors = LogitsProcessorList()
    if penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(penalty))
    processors.append(MinNewTokensLengthLogitsProcessor(0, 2, EOS))
    processors.append(SuppressTokensLogitsProcessor(SUPPRESSED))
    if do_sample:
        if temperature != 1.0:
            processors.append(TemperatureLogitsWarper(temperature))
        if top_k != 0:
            processors.append(TopKLogitsWarper(top_k))
        if top_p < 1.0:
            processors.append(TopPLogitsWarper(top_p))
    scores: torch.Tensor = processors(ids, logits.clone().unsqueeze(0))[0]
    return scores


def processed_rows(logits: torch.Tensor) -> tuple[torch.Tensor, StageTensors, int]:
    """The ROWS' codebook-0 logits processed in one batch, their settings and candidates."""
    seen = torch.zeros(len(ROWS), VOCAB, dtype=torch.bool)
    for i, row in enumerate(ROWS):
        seen[i, row[5]] = True
    penalty = torch.tensor([[row[4]] for row in ROWS])
    generated = torch.tensor([len(row[5]) for row in ROWS])
    processed = process_first_codebook(logits, seen, penalty, generated, EOS_MASK, SUPPRESSED_MASK)
    stages = [StageSampling(*row[:4]) for row in ROWS]
    return processed, StageTensors.of(stages), candidates_for(stages, VOCAB)


def keys_for(seeds: list[int], frame: int = 0, codebook: int = 0) -> torch.Tensor:
    return torch.from_numpy(
        keys(np.asarray(seeds), np.zeros(len(seeds)), np.full(len(seeds), frame), np.asarray(codebook))
    )


@pytest.mark.parametrize("trial", range(5))
def test_greedy_rows_take_the_argmax_transformers_gives_them(trial: int) -> None:
    logits = torch.randn(len(ROWS), VOCAB, generator=torch.Generator().manual_seed(trial)) * 3
    processed, stage, candidates = processed_rows(logits)
    tokens = sample(processed, stage, keys_for(list(range(len(ROWS)))), candidates).tolist()
    for i, row in enumerate(ROWS):
        scores = transformers_scores(logits[i], row)
        if not row[0]:
            assert tokens[i] == int(scores.argmax())
        else:  # a sampling row draws a token the warpers keep
            assert scores[tokens[i]] > -torch.inf


def test_a_rows_draw_depends_on_its_key_alone() -> None:
    """The same row in another batch, at another place, with fewer candidates looked at (its
    company there has top-k on), draws the same token."""
    logits = torch.randn(len(ROWS), VOCAB, generator=torch.Generator().manual_seed(9)) * 3
    processed, stage, candidates = processed_rows(logits)
    row_keys = keys_for([11, 12, 13, 14, 15], frame=3)
    together = sample(processed, stage, row_keys, candidates)
    order = [3, 0, 4]
    stages = [StageSampling(*ROWS[i][:4]) for i in order]
    fewer = candidates_for(stages, VOCAB)
    alone = sample(processed[order], StageTensors.of(stages), row_keys[order], fewer)
    assert alone.tolist() == together[order].tolist()
    assert (candidates, fewer) == (VOCAB, 64)  # the batch looked at every id, the others at 64


def test_the_counter_draws_are_uniform_and_independent_of_their_neighbours() -> None:
    row_keys = keys_for(list(range(64)), codebook=5)
    u = uniform(row_keys, torch.arange(4096).expand(64, 4096))
    assert float(u.min()) > 0.0 and float(u.max()) < 1.0
    counts = torch.histc(u, bins=16, min=0.0, max=1.0)
    expected = u.numel() / 16
    statistic = float(((counts - expected) ** 2 / expected).sum())
    assert statistic < chi2.ppf(0.999, 15)
    # Neighbouring keys, codebooks and ids are uncorrelated.
    assert abs(float(torch.corrcoef(torch.stack([u[0], u[1]]))[0, 1])) < 0.1
    assert (
        abs(
            float(
                torch.corrcoef(
                    torch.stack([u[0], uniform(keys_for([0], codebook=6), torch.arange(4096).unsqueeze(0))[0]])
                )[0, 1]
            )
        )
        < 0.1
    )


# (temperature, top_k, top_p) of sampling rows: each setting alone and combined
WARPED_ROWS = [
    (1.0, 0, 1.0),
    (0.6, 0, 1.0),
    (1.0, 4, 1.0),
    (1.0, 0, 0.7),
    (1.4, 5, 1.0),
    (0.8, 0, 0.85),
    (1.0, 6, 0.8),
    (1.3, 5, 0.9),
]


def warped_probabilities(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """The distribution transformers' warpers give one row (what torch.multinomial samples)."""
    processors = LogitsProcessorList([TemperatureLogitsWarper(temperature)])
    if top_k:
        processors.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        processors.append(TopPLogitsWarper(top_p))
    scores: torch.Tensor = processors(torch.zeros(1, 0, dtype=torch.long), logits.clone().unsqueeze(0))
    return scores.softmax(dim=-1)[0]


def chi_square(counts: torch.Tensor, probabilities: torch.Tensor) -> tuple[float, int]:
    """Pearson's statistic over the ids with probability, and its degrees of freedom."""
    support = probabilities > 0
    expected = probabilities[support] * counts.sum()
    statistic = float(((counts[support] - expected) ** 2 / expected).sum())
    return statistic, int(support.sum()) - 1


@pytest.mark.parametrize("row", WARPED_ROWS, ids=lambda row: f"t{row[0]}-k{row[1]}-p{row[2]}")
def test_draws_follow_the_warped_distribution_like_torch_multinomial(row: tuple[float, int, float]) -> None:
    """Many draws (each a different frame of the same seed): the counter-based sampler passes
    a chi-square test against the warped probabilities, as torch.multinomial does, and never
    draws an id the warpers removed."""
    vocab = 64
    logits = torch.full((vocab,), -6.0)
    logits[:8] = torch.log(torch.tensor([0.3, 0.2, 0.15, 0.12, 0.09, 0.07, 0.05, 0.02]))
    expected = warped_probabilities(logits, *row)
    draws = 6000
    stage = StageTensors.of([StageSampling(True, *row)] * draws)
    frames = torch.from_numpy(keys(np.asarray(1234), np.asarray(0), np.arange(draws), np.asarray(1)))
    candidates = candidates_for([StageSampling(True, *row)], vocab)
    tokens = sample(logits.expand(draws, vocab).clone(), stage, frames, candidates, row[2] < 1.0)
    ours = torch.bincount(tokens, minlength=vocab).float()
    assert float(ours[expected == 0].sum()) == 0.0
    statistic, freedom = chi_square(ours, expected)
    generator = torch.Generator().manual_seed(99)
    theirs = torch.bincount(
        torch.multinomial(expected.expand(draws, vocab), 1, generator=generator).squeeze(1), minlength=vocab
    ).float()
    reference, _ = chi_square(theirs, expected)
    critical = chi2.ppf(0.999, freedom) if freedom > 0 else 0.0
    assert statistic <= critical, (statistic, critical, reference)
    assert reference <= critical  # the yardstick itself passes the same test


def test_end_of_speech_is_banned_for_the_first_two_tokens() -> None:
    logits = torch.zeros(2, VOCAB)
    logits[:, EOS] = 100.0
    seen = torch.zeros(2, VOCAB, dtype=torch.bool)
    processed = process_first_codebook(logits, seen, torch.ones(2, 1), torch.tensor([1, 2]), EOS_MASK, SUPPRESSED_MASK)
    greedy = StageTensors.of([StageSampling(False, 1.0, 0, 1.0)] * 2)
    first, third = sample(processed, greedy, keys_for([1, 2]), 1).tolist()
    assert first != EOS
    assert third == EOS


def test_suppressed_control_ids_are_never_drawn() -> None:
    logits = torch.zeros(20, VOCAB)
    logits[:, SUPPRESSED] = 50.0
    processed = process_first_codebook(
        logits,
        torch.zeros(20, VOCAB, dtype=torch.bool),
        torch.ones(20, 1),
        torch.full((20,), 5),
        EOS_MASK,
        SUPPRESSED_MASK,
    )
    stage = StageTensors.of([StageSampling(True, 2.0, 0, 1.0)] * 20)
    tokens = sample(processed, stage, keys_for(list(range(20))), VOCAB)
    assert not any(token in SUPPRESSED for token in tokens.tolist())
