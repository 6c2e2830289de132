"""The server's own frame loop against the package's `generate`, on the real dev checkpoints:
with greedy decoding every codec code is equal, for preset speakers with and without an
instruction, cloned voices in ICL and x-vector mode, two languages, a repetition penalty and a
token budget. The package stays here as the reference; serving never calls its generate.
(Sampled codes cannot equal the package's: the loop draws from a counter-based hash, the
package from torch's generator; tests/engine/test_seeded_sampling.py checks those.)"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
import torch

from server.engine.jobs import CloneVoice, SamplingParams, SynthesisJob
from server.engine.sequence import JobStream
from server.engine.slots.qwen import LoopLimits, QwenBackend
from tests.support.checkpoints import DevBackend
from tests.support.reference import tone

LIMITS = LoopLimits(max_batch=4, max_length=1024)
TEXT_EN = "The frame loop must say exactly what the package says."
TEXT_ZH = "帧循环必须和软件包说的完全一样。"


@pytest.fixture(scope="module")
def custom_voice(dev_backend: DevBackend) -> QwenBackend:
    loaded: QwenBackend = dev_backend("custom_voice", max_batch=LIMITS.max_batch, max_length=LIMITS.max_length)
    return loaded


@pytest.fixture(scope="module")
def voice_design(dev_backend: DevBackend) -> QwenBackend:
    loaded: QwenBackend = dev_backend("voice_design", max_batch=LIMITS.max_batch, max_length=LIMITS.max_length)
    return loaded


@pytest.fixture(scope="module")
def base(dev_backend: DevBackend) -> QwenBackend:
    loaded: QwenBackend = dev_backend("base", max_batch=LIMITS.max_batch, max_length=LIMITS.max_length)
    return loaded


def package_codes(backend: QwenBackend, call: str, seed: int | None, **kwargs: Any) -> torch.Tensor:
    """The codes the package's own generate produces (its decode is not needed here)."""
    wrapper = backend._model
    captured: list[torch.Tensor] = []
    original = wrapper.model.generate

    def spy(*args: Any, **kw: Any) -> Any:
        out = original(*args, **kw)
        captured.append(out[0][0])
        return out

    wrapper.model.generate = spy
    try:
        if seed is not None:
            torch.manual_seed(seed)
        with torch.inference_mode():
            getattr(wrapper, call)(**kwargs)
    finally:
        wrapper.model.generate = original
    return captured[0]


def loop_codes(backend: QwenBackend, job: SynthesisJob) -> torch.Tensor:
    """The codes of the job's first segment from the server's batch code, stepped alone."""
    stream = JobStream(job, 600, asyncio.new_event_loop(), max_ahead=10**9)
    batch = backend.batch
    with torch.inference_mode():
        sequence = batch.start(stream, 0.0, backend.row_sampling(job.sampling))
        while not sequence.finished:
            batch.step()
        codes = sequence.pending_codes()
        batch.remove(sequence)
    return codes


def sampling_kwargs(greedy: bool) -> dict[str, Any]:
    return {"do_sample": False, "subtalker_dosample": False} if greedy else {}


MODES = [pytest.param(True, None, id="greedy")]


@pytest.mark.parametrize(("greedy", "seed"), MODES)
@pytest.mark.parametrize(
    ("text", "language", "speaker", "instruct"),
    [
        (TEXT_EN, "English", "Vivian", None),
        (TEXT_ZH, "Chinese", "Dylan", None),  # a dialect speaker: the language id is remapped
        (TEXT_EN, "Auto", "Ryan", "Speak slowly and calmly."),
    ],
)
def test_preset_voice_codes_equal_the_package(
    custom_voice: QwenBackend,
    greedy: bool,
    seed: int | None,
    text: str,
    language: str,
    speaker: str,
    instruct: str | None,
) -> None:
    assert custom_voice.honours_instruct  # the tiny checkpoint is not a 0.6B one: instruct is used
    expected = package_codes(
        custom_voice,
        "generate_custom_voice",
        seed,
        text=text,
        speaker=speaker,
        language=language,
        instruct=instruct,
        max_new_tokens=256,
        **sampling_kwargs(greedy),
    )
    job = SynthesisJob(
        slot="custom_voice",
        segments=(text,),
        language=language,
        token_cap=256,
        speaker=speaker,
        instruct=instruct,
        seed=seed,
        sampling=SamplingParams(temperature=0 if greedy else None),
    )
    actual = loop_codes(custom_voice, job)
    assert actual.shape[0] > 4
    assert torch.equal(actual, expected)


@pytest.mark.parametrize(("greedy", "seed"), MODES)
@pytest.mark.parametrize("mode", ["icl", "x_vector"])
def test_cloned_voice_codes_equal_the_package(base: QwenBackend, greedy: bool, seed: int | None, mode: str) -> None:
    reference = (tone(2.0, 24_000, seed=4)[:, 0], 24_000)
    ref_text = "A short reference transcript." if mode == "icl" else None
    prompt = base.clone_prompt(CloneVoice(reference=reference, ref_text=ref_text))
    expected = package_codes(
        base,
        "generate_voice_clone",
        seed,
        text=TEXT_EN,
        language="English",
        voice_clone_prompt=prompt,
        max_new_tokens=256,
        **sampling_kwargs(greedy),
    )
    job = SynthesisJob(
        slot="base",
        segments=(TEXT_EN,),
        language="English",
        token_cap=256,
        clone=CloneVoice(prompt=prompt),
        seed=seed,
        sampling=SamplingParams(temperature=0 if greedy else None),
    )
    assert torch.equal(loop_codes(base, job), expected)


DESCRIPTION = "A warm, low voice, speaking slowly and close to the microphone."


@pytest.mark.parametrize(("greedy", "seed"), MODES)
@pytest.mark.parametrize(("text", "language"), [(TEXT_EN, "English"), (TEXT_ZH, "Auto")])
def test_designed_voice_codes_equal_the_package(
    voice_design: QwenBackend, greedy: bool, seed: int | None, text: str, language: str
) -> None:
    assert voice_design.kind == "voice_design" and voice_design.honours_instruct
    expected = package_codes(
        voice_design,
        "generate_voice_design",
        seed,
        text=text,
        instruct=DESCRIPTION,
        language=language,
        max_new_tokens=256,
        **sampling_kwargs(greedy),
    )
    job = SynthesisJob(
        slot="voice_design",
        segments=(text,),
        language=language,
        token_cap=256,
        instruct=DESCRIPTION,
        seed=seed,
        sampling=SamplingParams(temperature=0 if greedy else None),
    )
    actual = loop_codes(voice_design, job)
    assert actual.shape[0] > 4
    assert torch.equal(actual, expected)


def test_designed_voices_share_steps_and_keep_their_codes(voice_design: QwenBackend) -> None:
    """Two descriptions in one batch, stepped together: each row's codes are its own, the
    same as alone (seeded), and the two differ (each prompt holds its own description)."""

    def job(description: str, seed: int) -> SynthesisJob:
        return SynthesisJob(
            slot="voice_design",
            segments=(TEXT_EN,),
            language="English",
            token_cap=128,
            instruct=description,
            seed=seed,
        )

    jobs = [job(DESCRIPTION, 3), job("A bright, quick young voice.", 4)]
    alone = [loop_codes(voice_design, one) for one in jobs]
    batch = voice_design.batch
    loop = asyncio.new_event_loop()
    with torch.inference_mode():
        sequences = [
            batch.start(JobStream(one, 600, loop, max_ahead=10**9), 0.0, voice_design.row_sampling(one.sampling))
            for one in jobs
        ]
        shared = 0
        while not all(s.finished for s in sequences):
            shared += batch.step() == 2
        together = [s.pending_codes() for s in sequences]
        for sequence in sequences:
            batch.remove(sequence)
    assert shared > 4  # they really ran in the same steps
    for mine, solo in zip(together, alone, strict=True):
        assert torch.equal(mine, solo)
    assert not torch.equal(alone[0][: min(len(a) for a in alone)], alone[1][: min(len(a) for a in alone)])


def test_token_budget_ends_the_segment_like_the_package(custom_voice: QwenBackend) -> None:
    # max_new_tokens counts sampled tokens; the last sampled one never becomes a frame.
    expected = package_codes(
        custom_voice,
        "generate_custom_voice",
        None,
        text=TEXT_EN,
        speaker="Vivian",
        language="English",
        max_new_tokens=6,
        **sampling_kwargs(True),
    )
    job = SynthesisJob(
        slot="custom_voice",
        segments=(TEXT_EN,),
        language="English",
        token_cap=6,
        speaker="Vivian",
        sampling=SamplingParams(temperature=0),
    )
    actual = loop_codes(custom_voice, job)
    assert actual.shape[0] == 5
    assert torch.equal(actual, expected)


def test_a_repetition_penalty_equals_the_package_with_the_same_value(custom_voice: QwenBackend) -> None:
    fields = SamplingParams(temperature=0, repetition_penalty=1.4)
    expected = package_codes(
        custom_voice,
        "generate_custom_voice",
        None,
        text=TEXT_EN,
        speaker="Serena",
        language="English",
        max_new_tokens=256,
        repetition_penalty=1.4,
        **sampling_kwargs(True),
    )
    job = SynthesisJob(
        slot="custom_voice",
        segments=(TEXT_EN,),
        language="English",
        token_cap=256,
        speaker="Serena",
        sampling=fields,
    )
    assert torch.equal(loop_codes(custom_voice, job), expected)


def test_unknown_speaker_is_refused_with_the_package_message(custom_voice: QwenBackend) -> None:
    from server.engine.errors import InvalidSynthesisInput

    job = SynthesisJob(slot="custom_voice", segments=("Hi.",), language="English", token_cap=16, speaker="Nobody")
    with pytest.raises(InvalidSynthesisInput, match="Unsupported speakers"):
        loop_codes(custom_voice, job)
    assert custom_voice.batch.rows == []


def test_codes_are_plain_integers_in_codebook_range(custom_voice: QwenBackend) -> None:
    job = SynthesisJob(slot="custom_voice", segments=(TEXT_EN,), language="English", token_cap=64, speaker="Aiden")
    codes = loop_codes(custom_voice, job).numpy()
    assert codes.shape[1] == 16
    assert np.all((codes >= 0) & (codes < 2048))
