"""Per-row sampling against transformers' own logits processors and torch.multinomial: each
row of a mixed batch gets exactly what the package's generate would give it alone."""

from __future__ import annotations

import math

import pytest
import torch
from transformers.generation.logits_process import (
    LogitsProcessorList,
    MinNewTokensLengthLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    SuppressTokensLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from server.engine.sampling import StageBatch, StageSampling, draw, process_first_codebook

VOCAB = 3072
EOS = 2150
SUPPRESSED = [i for i in range(VOCAB - 1024, VOCAB) if i != EOS]

ROWS = [
    # (do_sample, temperature, top_k, top_p, repetition_penalty, generated so far)
    (True, 0.9, 50, 1.0, 1.05, [5, 17, 17, 900]),
    (True, 1.3, 0, 0.8, 1.0, [3]),
    (False, 1.0, 50, 1.0, 1.4, [1, 2, 3, 4, 5]),
    (True, 0.5, 7, 0.95, 2.0, []),
    (True, 1.0, 1, 1.0, 1.05, [8, 8]),
]


def reference(logits: torch.Tensor, row: tuple[bool, float, int, float, float, list[int]], seed: int) -> int:
    """What transformers' _sample picks for this row alone."""
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
    scores = processors(ids, logits.clone().unsqueeze(0))
    if not do_sample:
        return int(scores.argmax(dim=-1))
    generator = torch.Generator().manual_seed(seed)
    return int(torch.multinomial(scores.softmax(dim=-1), 1, generator=generator))


def processed_rows(logits: torch.Tensor) -> tuple[torch.Tensor, StageBatch]:
    """The ROWS' codebook-0 logits processed in one batch, and their sampling settings."""
    seen = torch.zeros(len(ROWS), VOCAB, dtype=torch.bool)
    for i, row in enumerate(ROWS):
        seen[i, row[5]] = True
    penalty = torch.tensor([[row[4]] for row in ROWS])
    generated = torch.tensor([len(row[5]) for row in ROWS])
    processed = process_first_codebook(logits, seen, penalty, generated, EOS, torch.tensor(SUPPRESSED))
    return processed, StageBatch.of([StageSampling(*row[:4]) for row in ROWS], torch.device("cpu"))


@pytest.mark.parametrize("trial", range(5))
def test_each_row_matches_transformers_alone(trial: int) -> None:
    logits = torch.randn(len(ROWS), VOCAB, generator=torch.Generator().manual_seed(trial)) * 3
    processed, stage = processed_rows(logits)
    seeds = [100 * trial + i for i in range(len(ROWS))]
    tokens = draw(processed, stage, [torch.Generator().manual_seed(s) for s in seeds])
    expected = [reference(logits[i], row, seeds[i]) for i, row in enumerate(ROWS)]
    assert tokens.tolist() == expected


@pytest.mark.parametrize("trial", range(3))
def test_seeded_and_greedy_rows_keep_their_tokens_beside_unseeded_rows(trial: int) -> None:
    """Unseeded rows draw among their top-k candidates; the seeded and greedy rows that share
    their batch still get exactly what transformers gives them alone."""
    logits = torch.randn(len(ROWS), VOCAB, generator=torch.Generator().manual_seed(50 + trial)) * 3
    processed, stage = processed_rows(logits)
    seeded = {1: 7 + trial, 2: 8 + trial, 4: 9 + trial}  # row 1: top-k off; row 2: greedy
    generators = [torch.Generator().manual_seed(seeded[i]) if i in seeded else None for i in range(len(ROWS))]
    tokens = draw(processed, stage, generators).tolist()
    for i, seed in seeded.items():
        assert tokens[i] == reference(logits[i], ROWS[i], seed)
    assert all(token not in SUPPRESSED for token in tokens)


# (temperature, top_k, top_p) of rows that sample without a seed, all in one batch
UNSEEDED_ROWS = [(1.0, 3, 1.0), (0.7, 3, 0.6), (1.5, 5, 0.9), (1.0, 50, 1.0)]


def warped_probabilities(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """The distribution transformers' warpers give one row."""
    processors = LogitsProcessorList([TemperatureLogitsWarper(temperature), TopKLogitsWarper(top_k)])
    if top_p < 1.0:
        processors.append(TopPLogitsWarper(top_p))
    scores: torch.Tensor = processors(torch.zeros(1, 0, dtype=torch.long), logits.clone().unsqueeze(0))
    return scores.softmax(dim=-1)[0]


def test_unseeded_rows_draw_the_warped_distribution_among_their_candidates() -> None:
    """Temperature, top-k and top-p per row, applied to the candidates only, give the
    distribution transformers' warpers give over the whole vocabulary (a fixed global seed
    keeps the test repeatable)."""
    torch.manual_seed(4321)
    base = torch.log(torch.tensor([0.35, 0.25, 0.2, 0.1, 0.06, 0.04]))
    logits = torch.full((len(UNSEEDED_ROWS), 64), -20.0)
    logits[:, :6] = base
    stage = StageBatch.of([StageSampling(True, *row) for row in UNSEEDED_ROWS], torch.device("cpu"))
    counts = torch.zeros(len(UNSEEDED_ROWS), 64)
    draws = 4000
    for _ in range(draws):
        tokens = draw(logits, stage, [None] * len(UNSEEDED_ROWS))
        counts[torch.arange(len(UNSEEDED_ROWS)), tokens] += 1
    for i, row in enumerate(UNSEEDED_ROWS):
        expected = warped_probabilities(logits[i], *row)
        assert torch.allclose(counts[i] / draws, expected, atol=0.025), (row, counts[i][:8] / draws, expected[:8])
        assert float(counts[i][expected == 0].sum()) == 0.0


def test_end_of_speech_is_banned_for_the_first_two_tokens() -> None:
    logits = torch.zeros(2, VOCAB)
    logits[:, EOS] = 100.0
    seen = torch.zeros(2, VOCAB, dtype=torch.bool)
    penalty = torch.ones(2, 1)
    processed = process_first_codebook(logits, seen, penalty, torch.tensor([1, 2]), EOS, torch.tensor(SUPPRESSED))
    greedy = StageBatch.of([StageSampling(False, 1.0, 0, 1.0)] * 2, torch.device("cpu"))
    first, third = draw(processed, greedy, [None, None]).tolist()
    assert first != EOS
    assert third == EOS


def test_suppressed_control_ids_are_never_drawn() -> None:
    logits = torch.zeros(1, VOCAB)
    logits[0, SUPPRESSED] = 50.0
    processed = process_first_codebook(
        logits,
        torch.zeros(1, VOCAB, dtype=torch.bool),
        torch.ones(1, 1),
        torch.tensor([5]),
        EOS,
        torch.tensor(SUPPRESSED),
    )
    stage = StageBatch.of([StageSampling(True, 2.0, 0, 1.0)], torch.device("cpu"))
    for seed in range(20):
        token = int(draw(processed, stage, [torch.Generator().manual_seed(seed)]))
        assert token not in SUPPRESSED


def test_rows_without_a_seed_sample_in_proportion() -> None:
    """Rows without a generator share cheaper noise; their draws still follow the warped
    distribution (a fixed global seed keeps the test repeatable)."""
    torch.manual_seed(1234)
    logits = torch.full((4, 16), -math.inf)
    logits[:, :3] = torch.log(torch.tensor([0.7, 0.2, 0.1]))
    stage = StageBatch.of([StageSampling(True, 1.0, 0, 1.0)] * 4, torch.device("cpu"))
    counts = torch.zeros(16)
    for _ in range(2500):
        counts += torch.bincount(draw(logits, stage, [None] * 4), minlength=16)
    shares = counts / counts.sum()
    assert torch.allclose(shares[:3], torch.tensor([0.7, 0.2, 0.1]), atol=0.02)
    assert float(shares[3:].sum()) == 0.0
