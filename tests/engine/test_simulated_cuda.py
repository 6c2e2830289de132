"""The engine end to end on the simulated CUDA device (server/engine/device/simulated.py):
models load onto `cuda:0`, warm up and capture their graphs, every kind of voice streams to
its end through the real engine and its inference thread, the guards fire, the aligner
times words, idle unload frees every device tensor, and no operation mixes devices. The
host's waits for the device are counted: one per frame, at most two per join, no pageable
copy inside a frame.

One scenario runs once for the module (loading three models on the simulated device takes
a while on two cores); each test checks one figure of its report.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from server.engine.codec.batched import PIECE_FRAMES
from server.engine.device.simulated import Ledger, SimulatedCuda
from server.engine.frame.graphs import capture_plan
from server.engine.frame.guards import GuardLimits
from server.engine.jobs import CloneVoice, FinishReason, SamplingParams, SlotName, SynthesisJob
from server.engine.scheduler import Engine, EngineLimits
from server.engine.sequence import JobStream
from server.engine.slots.models import ModelSlot
from server.engine.slots.qwen import LoopLimits, QwenBackend, timed_load
from tests.support.checkpoints import DevCheckpoint

pytestmark = pytest.mark.simulated_cuda

TEXT = "A short sentence, spoken on a device that only says it is a GPU."
# The prompts here are short and no row runs past 40 frames: one length bucket (256) per batch
# bucket is enough, and each capture and warm-up on the simulated device costs seconds.
LIMITS = LoopLimits(max_batch=4, max_length=256)
FRAMES = 8  # token cap per segment: three chunks (2, 4, then 2 frames)


@dataclass
class Report:
    audio: dict[str, np.ndarray] = field(default_factory=dict)  # voice kind -> its whole audio
    finish: dict[str, list[FinishReason]] = field(default_factory=dict)
    captures: list[str] = field(default_factory=list)
    expected_captures: list[str] = field(default_factory=list)
    placed: dict[str, list[str]] = field(default_factory=dict)  # model -> names off the device
    frames: list[Ledger] = field(default_factory=list)  # one per frame, chunks due or not
    joins: list[Ledger] = field(default_factory=list)
    frames_with_chunks: int = 0
    prefill_difference: float = -1.0  # logits: prefilled together against alone
    prefill_scale: float = 0.0
    stream_vs_whole: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    words: list[Any] = field(default_factory=list)
    bytes_loaded: int = 0
    bytes_after_unload: int = -1
    leftovers: list[Any] = field(default_factory=list)
    ledger: Ledger = field(default_factory=Ledger)


def reference_audio(seconds: float = 2.0) -> tuple[np.ndarray, int]:
    rate = 24_000
    t = np.arange(int(seconds * rate)) / rate
    voice = 0.3 * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return voice.astype(np.float32), rate


def off_device(backend: QwenBackend) -> list[str]:
    """Parameters and buffers of the model and its codec that are not on the device."""
    inner = backend._model.model
    found = []
    for module in (inner, inner.speech_tokenizer.model):
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            if tensor.device.type != "cuda":
                found.append(name)
    return found


async def collect(engine: Engine, job: SynthesisJob) -> tuple[np.ndarray, list[FinishReason]]:
    pieces, reasons = [], []
    async for chunk in engine.synthesize(job):
        pieces.append(chunk.pcm)
        if chunk.stats is not None:
            reasons.append(chunk.stats.finish_reason)
    return np.concatenate(pieces), reasons


def measure_frames(backend: QwenBackend, sim: SimulatedCuda, report: Report) -> None:
    """Four streams join and run (inference thread): each join's and each frame's cost, and
    each stream's codes and delivered audio, against the decode of its whole code sequence."""
    loop = asyncio.new_event_loop()
    batch = backend.batch
    sampling = backend.row_sampling(SamplingParams())
    codes: dict[int, list[list[int]]] = {}
    try:
        streams = []
        before = sim.ledger.snapshot()
        for seed in range(4):  # four newcomers in one tick: prefilled together
            job = SynthesisJob("custom_voice", (TEXT,), "English", FRAMES + 2 * seed, speaker="Vivian", seed=seed)
            streams.append(JobStream(job, 600, loop, max_ahead=10**9))
            batch.join(streams[-1], 0.0, sampling)
        prompts = [sequence.prompt.embeds for sequence in batch.joining]
        alone = [backend.frames.prefill(embeds).logits for embeds in prompts]
        together = [prefilled.logits for prefilled in backend.frames.prefill_many(prompts)]
        report.prefill_difference = max(float((a - b).abs().max()) for a, b in zip(alone, together, strict=True))
        report.prefill_scale = max(float(a.abs().max()) for a in alone)
        between = sim.ledger.since(before)
        batch.admit()
        report.joins.append(sim.ledger.since(before).since(between))
        while batch.rows:
            before = sim.ledger.snapshot()
            batch.step()
            due = [s for s in batch.rows if s.finished or s.chunk_due(s.stream.job.chunks)]
            for sequence in due:
                codes.setdefault(id(sequence.stream), []).extend(sequence.pending)
            batch.emit(lambda _sequence: None)
            report.frames.append(sim.ledger.since(before))
            report.frames_with_chunks += bool(due)
        batch.flush()
        loop.run_until_complete(asyncio.sleep(0))  # the deliveries, queued on this loop
        for stream in streams:
            pieces = []
            while not stream._items.empty():
                item = stream._items.get_nowait()
                pieces.append(item.pcm)
            whole = backend.codec_decoder(torch.tensor(codes[id(stream)], device="cuda").T.unsqueeze(0))[0, 0]
            report.stream_vs_whole.append((np.concatenate(pieces), whole.float().cpu().numpy()))
    finally:
        loop.close()


async def speak_saved_design(engine: Engine, report: Report, path: Path) -> None:
    """A designed voice saved to the library: its audio becomes a clone prompt on the base
    model, written to a file and read back onto the device, then spoken from. (Its speaker
    embedding lives on the device too, until this returns.)"""
    designed = (report.audio["designed"], 24_000)
    prompt = await engine.run_with_model("base", lambda b: b.clone_prompt(CloneVoice(reference=designed)))
    await engine.run_with_model("base", lambda b: b.save_prompt(prompt, path))
    saved = await engine.run_with_model("base", lambda b: b.load_prompt(path))
    job = SynthesisJob("base", (TEXT,), "English", FRAMES, clone=CloneVoice(prompt=saved), seed=6)
    report.audio["saved designed"], report.finish["saved designed"] = await collect(engine, job)


async def scenario(sim: SimulatedCuda, checkpoints: dict[str, Path], aligner_dir: Path) -> Report:
    report = Report()
    device = "cuda"

    def loader(model_id: str) -> tuple[QwenBackend, float]:
        return timed_load(model_id, device, True, 0, LIMITS)

    names: dict[SlotName, str] = {"custom_voice": "custom_voice", "base": "base", "voice_design": "voice_design"}
    slots = {name: ModelSlot(name, str(checkpoints[key]), device, loader) for name, key in names.items()}
    engine = Engine(slots, EngineLimits(max_queue_depth=64, request_timeout=600, idle_timeout=0, max_batch_size=4))
    await engine.start(preload=("custom_voice", "base", "voice_design"))
    try:
        for name, slot in slots.items():
            assert slot.backend is not None, slot.describe()
            report.placed[name] = off_device(slot.backend)
            report.expected_captures += [
                f"{stage} {bucket}" + (f"x{length}" if length else "")
                for stage, bucket, length in capture_plan(slot.backend.frames)
            ]
            # The codec's decode per piece size (any chunk is a sum of them) and batch bucket.
            report.expected_captures += [
                f"codec {size}x{bucket}" for size in PIECE_FRAMES for bucket in slot.backend.frames.batch_buckets
            ]
        report.captures = list(sim.ledger.captures)
        report.bytes_loaded = sim.live_bytes()

        reference = reference_audio()
        design = "A calm, low voice, speaking slowly."
        jobs = {
            "preset": SynthesisJob("custom_voice", (TEXT,), "English", FRAMES, speaker="Vivian", seed=1),
            "instructed": SynthesisJob(
                "custom_voice", (TEXT,), "English", FRAMES, speaker="Vivian", instruct="Whisper.", seed=2
            ),
            "cloned in context": SynthesisJob(
                "base",
                (TEXT,),
                "English",
                FRAMES,
                clone=CloneVoice(reference=reference, ref_text="A reference."),
                seed=3,
            ),
            "cloned x-vector": SynthesisJob(
                "base", (TEXT,), "English", FRAMES, clone=CloneVoice(reference=reference), seed=4
            ),
            "designed": SynthesisJob("voice_design", (TEXT,), "English", FRAMES, instruct=design, seed=5),
        }
        results = await asyncio.gather(*(collect(engine, job) for job in jobs.values()))
        for kind, (audio, reasons) in zip(jobs, results, strict=True):
            report.audio[kind], report.finish[kind] = audio, reasons

        await speak_saved_design(engine, report, checkpoints["voices"] / "designed.pt")
        await engine.run_with_model("custom_voice", lambda b: measure_frames(b, sim, report))

        from server.engine.slots.aligner import AlignerSlot

        aligner = AlignerSlot(str(aligner_dir), device, idle_timeout=0)
        audio = report.audio["preset"][: 24_000 * 3]
        report.words = await aligner.align(audio, 24_000, "A short sentence.", "English")
        await aligner.stop()
    finally:
        await engine.stop(grace=0)  # unloads every model
    report.bytes_after_unload = sim.live_bytes()
    report.leftovers = [(tuple(t.shape), t.dtype) for t in sim.live]
    report.ledger = sim.ledger.snapshot()
    return report


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatedCuda]:
    """The simulated device, serving `cuda` for the module (this thread bound to it)."""
    device = SimulatedCuda()
    with device.installed(), torch.inference_mode():
        yield device


@pytest.fixture(scope="module")
def report(
    sim: SimulatedCuda,
    custom_voice_dir: Path,
    base_dir: Path,
    voice_design_dir: Path,
    aligner_checkpoint: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Report:
    voices = tmp_path_factory.mktemp("voices")
    checkpoints = {
        "custom_voice": custom_voice_dir,
        "base": base_dir,
        "voice_design": voice_design_dir,
        "voices": voices,
    }
    return asyncio.run(scenario(sim, checkpoints, aligner_checkpoint))


def test_every_parameter_and_buffer_is_on_the_device(report: Report) -> None:
    assert set(report.placed) == {"custom_voice", "base", "voice_design"}
    assert all(names == [] for names in report.placed.values()), report.placed


def test_every_bucket_and_chunk_size_is_captured_at_load(report: Report) -> None:
    assert report.expected_captures
    assert sorted(report.captures) == sorted(report.expected_captures)


@pytest.mark.parametrize(
    "kind", ["preset", "instructed", "cloned in context", "cloned x-vector", "designed", "saved designed"]
)
def test_every_voice_streams_to_its_end(report: Report, kind: str) -> None:
    audio = report.audio[kind]
    assert audio.dtype == np.float32 and audio.size >= 1920
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0
    assert report.finish[kind] and report.finish[kind][0] in (FinishReason.STOP, FinishReason.LENGTH)


def test_no_operation_mixed_devices(report: Report) -> None:
    assert report.ledger.cross_device == []


def test_one_host_sync_per_frame_with_chunks_due_or_not(report: Report) -> None:
    """Each frame's one wait is the read of its output; the audio of the chunks due after it
    is read after the next frame's wait. Only the batch's last frame, with no frame after
    it, waits once more, for its last chunks."""
    assert report.frames_with_chunks >= 2
    *running, last = report.frames
    assert [frame.syncs for frame in running] == [1] * len(running)
    assert last.syncs == 2
    assert all(frame.host_syncs.keys() == {"event wait"} for frame in report.frames)


def test_a_join_waits_for_the_device_at_most_twice(report: Report) -> None:
    """Four newcomers of one tick, prompts built and prefilled together into their rows."""
    (tick,) = report.joins
    assert tick.syncs <= 2, dict(tick.host_syncs)
    assert tick.pageable_copies == 0


def test_newcomers_prefilled_together_get_their_own_logits(report: Report) -> None:
    """Right-padded prompts through one forward: each row's first logits are its own prompt's,
    up to bf16 rounding of a batched kernel (the device runs the talker in bf16)."""
    assert report.prefill_scale > 0
    assert report.prefill_difference <= 0.05 * report.prefill_scale


def test_no_pageable_copy_inside_a_frame(report: Report) -> None:
    assert sum(frame.pageable_copies for frame in report.frames) == 0


def test_frames_replay_their_graphs(report: Report) -> None:
    assert all(frame.ops_inside > 0 for frame in report.frames)
    assert sum(report.ledger.replays.values()) >= 2 * len(report.frames)
    assert any(name.startswith("codec ") for name in report.ledger.replays)


def test_few_operations_outside_graphs_per_frame(report: Report) -> None:
    """Frames with chunks due included: the codec's decode is replayed too, so what the host
    launches per frame (kernels and copies outside the replays) is a handful, not hundreds."""
    assert max(frame.ops_outside + frame.async_copies for frame in report.frames) <= 60


def test_streamed_audio_equals_the_whole_decode(report: Report) -> None:
    """Streams decoded together, chunk by chunk, from per-row state in captured graphs: each
    one's audio equals the package's decode of its whole code sequence. The device runs the
    codec in bf16, where a batched kernel may round differently from the whole decode: within
    2e-2 of full scale (a bf16 step at 1.0 is 7.8e-3)."""
    assert len(report.stream_vs_whole) == 4
    for streamed, whole in report.stream_vs_whole:
        assert streamed.shape == whole.shape
        assert np.abs(streamed - whole).max() < 2e-2


def test_the_aligner_returns_words(report: Report) -> None:
    assert [span.text for span in report.words] == ["A", "short", "sentence"]
    assert all(0 <= span.start <= span.end for span in report.words)


def test_unloading_frees_every_device_tensor(report: Report) -> None:
    assert report.bytes_loaded > 0
    assert report.bytes_after_unload == 0, report.leftovers


def test_the_guards_fire_on_the_device(sim: SimulatedCuda, report: Report, dev_checkpoint: DevCheckpoint) -> None:
    """A checkpoint steered to fall silent after its text ends with the silence guard, its
    tail trimmed, on the simulated device. A short text: every text token is a frame, and an
    eager frame on the simulated device costs a good part of a second."""
    directory = dev_checkpoint(behaviour="silent")
    # Six quiet frames instead of 38 (the guard's logic is the same; each frame on the
    # simulated device costs a fraction of a second), the other guards off.
    guards = GuardLimits(silence_frames=6, loop_frames=0, tail_ratio=0)
    limits = LoopLimits(max_batch=1, max_length=256, guards=guards)
    backend = QwenBackend.load(str(directory), "cuda", limits=limits)
    loop = asyncio.new_event_loop()
    job = SynthesisJob("custom_voice", ("Quiet now.",), "english", 120, speaker="vivian", seed=3)
    sequence = backend.batch.start(JobStream(job, 600, loop, max_ahead=10**9), 0.0, backend.row_sampling(job.sampling))
    while not sequence.finished:
        backend.batch.step()
    backend.batch.remove(sequence)
    loop.close()
    backend.release()
    assert sequence.finish_reason is FinishReason.SILENCE
    assert sequence.trim > 0
    assert sim.ledger.cross_device == []


def test_a_failure_delivers_the_audio_in_flight_then_the_error(
    sim: SimulatedCuda, report: Report, custom_voice_dir: Path
) -> None:
    """On the device a chunk's audio is read after the next frame's wait. When the batch
    fails before that frame (a model error, an unload), the chunks already decoded still
    reach their listeners, then the error: nothing is lost and no consumer waits forever."""
    from server.engine.errors import EngineStoppedError
    from server.engine.jobs import AudioChunk

    backend = QwenBackend.load(str(custom_voice_dir), "cuda", limits=LoopLimits(max_batch=2, max_length=256))
    loop = asyncio.new_event_loop()
    streams = [
        JobStream(
            SynthesisJob("custom_voice", (TEXT,), "English", FRAMES, speaker="Vivian", seed=seed), 600, loop, 10**9
        )
        for seed in range(2)
    ]
    for stream in streams:
        backend.batch.start(stream, 0.0, backend.row_sampling(stream.job.sampling))
    while not backend.batch.audio_in_flight:  # the first chunks decoded, their audio not yet read
        backend.batch.step()
        backend.batch.emit(lambda _sequence: None)
    backend.batch.fail(EngineStoppedError())
    loop.run_until_complete(asyncio.sleep(0))
    for stream in streams:
        items = []
        while not stream._items.empty():
            items.append(stream._items.get_nowait())
        assert [type(item) for item in items] == [AudioChunk, EngineStoppedError]
        assert items[0].pcm.size == 2 * 1920  # the first chunk: two frames
    assert backend.batch.rows == []
    loop.close()
    backend.release()
