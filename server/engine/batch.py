"""The sequences generated together on one loaded model, and what happens to them between
frames: a newcomer is prefilled on its own and joins; one step produces a frame for every
sequence that may run; frames become audio chunks when a chunk is due; finished, cancelled and
timed-out sequences leave and free their row (inference thread only)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from server.engine.codec import StreamingDecoder, to_numpy
from server.engine.counter_rng import frame_keys
from server.engine.errors import InvalidSynthesisInput
from server.engine.jobs import SAMPLES_PER_FRAME, AudioChunk, CloneVoice, FinishReason, SegmentStats
from server.engine.prompt import PieceText, PromptBuilder
from server.engine.sampling import RowSampling, StageTensors, candidates_for, uses_top_p
from server.engine.sequence import JobStream, Sequence, segment_seed
from server.engine.step import (
    END_OF_SPEECH,
    REPETITION_GUARD,
    SILENCE_GUARD,
    TAIL_GUARD,
    TOKEN_BUDGET,
    FrameModel,
    FrameShape,
    bucket_for,
)
from server.text.budget import max_new_tokens_for

log = logging.getLogger("qwen3-tts.engine")

# The frame's end reasons (server/engine/step.py) as the request reports them.
FINISH_REASONS = {
    END_OF_SPEECH: FinishReason.STOP,
    TOKEN_BUDGET: FinishReason.LENGTH,
    SILENCE_GUARD: FinishReason.SILENCE,
    REPETITION_GUARD: FinishReason.REPETITION,
    TAIL_GUARD: FinishReason.LENGTH,
}


class ActiveBatch:
    def __init__(
        self,
        frames: FrameModel,
        prompts: PromptBuilder,
        codec_decoder: Any,
        clone_prompt: Callable[[CloneVoice], Any],
        capacity: int,
        runner: Callable[[FrameShape], None] | None = None,
    ) -> None:
        self.model = frames
        self.prompts = prompts
        self.codec_decoder = codec_decoder
        self.clone_prompt = clone_prompt
        self.capacity = capacity
        # Runs one frame: eagerly, or by replaying captured graphs (server/engine/graphs.py).
        self.runner = runner or self.run_eager
        self.rows: list[Sequence] = []  # row i lives in KV slot i and device row i

    @property
    def free(self) -> int:
        return self.capacity - len(self.rows)

    # ---- joining -----------------------------------------------------------------------

    def start(self, stream: JobStream, load_ms: float, sampling: RowSampling) -> Sequence:
        """Prefill the stream's next segment and give it a row. Raises InvalidSynthesisInput
        when the model refuses its input."""
        job = stream.job
        index = stream.next_segment
        text = job.segments[index]
        started = time.perf_counter()
        clone = None
        if job.clone is not None:
            prompt_items = job.clone.prompt if job.clone.prompt is not None else self.clone_prompt(job.clone)
            clone = prompt_items[0]
        prompt = self.prompts.build(
            PieceText(text=text, language=job.language, speaker=job.speaker, instruct=job.instruct, clone=clone)
        )
        room = self.model.max_length - prompt.length + 1
        if room < 2:
            raise InvalidSynthesisInput(
                f"the prompt of {prompt.length} tokens leaves no room in MAX_SEQUENCE_LENGTH "
                f"({self.model.max_length}); shorten the text or the reference"
            )
        if prompt.trailing.shape[1] > self.model.state.text_length:
            raise InvalidSynthesisInput(
                f"the text's {prompt.trailing.shape[1]} trailing tokens do not fit in MAX_SEQUENCE_LENGTH "
                f"({self.model.max_length}); shorten the text"
            )
        decoder = StreamingDecoder(self.codec_decoder)
        if prompt.ref_code is not None:
            decoder.skip(prompt.ref_code)  # its audio is the reference's, not wanted
        sequence = Sequence(
            stream=stream,
            segment=index,
            text=text,
            prompt=prompt,
            sampling=sampling,
            # Segment i is generated with the job's seed + i, so a sentence of a stream
            # reproduces alone; its draws are keyed by (that seed, frame, codebook).
            seed=segment_seed(stream.seed, index),
            budget=min(max_new_tokens_for(text, job.token_cap), room),
            decoder=decoder,
            queued_ms=(started - stream.segment_ready_at) * 1000 - load_ms,
            load_ms=load_ms,
            started=started,
        )
        prefilled = self.model.prefill(prompt.embeds)
        # End of speech is banned for the first tokens, so the first one never ends the segment.
        token = self.model.first_token(
            prefilled.logits,
            StageTensors.of([sampling.talker], self.model.device),
            sampling.repetition_penalty,
            sequence.seed,
            0,
        )
        sequence.slot = len(self.rows)
        self.model.cache.store_prefill(sequence.slot, prefilled.cache)
        self.model.state.start_row(
            sequence.slot,
            token=token,
            hidden=prefilled.hidden,
            position=prompt.length,
            budget=sequence.budget,
            sampling=sampling,
            trailing=prompt.trailing,
            tts_pad=prompt.tts_pad,
        )
        if self.model.guards is not None:
            self.model.guards.reset(sequence.slot, prompt.input_tokens)
        sequence.position = prompt.length
        sequence.sampled = 1
        self.rows.append(sequence)
        stream.next_segment = index + 1
        return sequence

    # ---- one frame ---------------------------------------------------------------------

    def step(self) -> int:
        """One frame for every sequence that may run (not finished, stream not backlogged):
        the host stages which rows run, the frame runs over the batch's bucket, and its codes
        and end reasons come back in one copy. Returns how many ran."""
        flags = [not s.finished and not s.stream.backlogged for s in self.rows]
        running = [s for s, runs in zip(self.rows, flags, strict=True) if runs]
        if not running:
            return 0
        for sequence in running:
            sequence.batch_max = max(sequence.batch_max, len(running))
        model = self.model
        bucket = bucket_for(len(self.rows), model.batch_buckets)
        length = bucket_for(max(s.position for s in running) + 1, model.length_buckets)
        talker = [s.sampling.talker for s in running]
        predictor = [s.sampling.predictor for s in running]
        shape = FrameShape(
            bucket=bucket,
            length=length,
            talker_candidates=candidates_for(talker, model.vocab),
            predictor_candidates=candidates_for(predictor, model.predictor_vocab),
            talker_top_p=uses_top_p(talker),
            predictor_top_p=uses_top_p(predictor),
        )
        keys = frame_keys(
            [s.seed for s in self.rows],
            [0] * len(self.rows),
            [s.sampled - 1 for s in self.rows],
            model.groups,
        )
        model.state.stage_inputs(flags, keys, bucket)
        self.runner(shape)
        model.state.fetch_outputs(bucket)
        outputs = model.state.outputs(len(self.rows))
        groups = model.groups
        for sequence, runs, row in zip(self.rows, flags, outputs, strict=True):
            if not runs:
                continue
            sequence.pending.append(row[:groups])
            sequence.frames += 1
            sequence.stream.frames_generated += 1
            if row[groups]:
                sequence.finish(FINISH_REASONS[row[groups]], trim=row[groups + 1])
            else:
                sequence.position += 1
                sequence.sampled += 1
        return len(running)

    def run_eager(self, shape: FrameShape) -> None:
        """The frame's two functions, run as they are: (B) the code predictor's frame, then
        (A) the talker's step."""
        self.model.predictor_frame(shape)
        self.model.talker_step(shape)

    # ---- audio -------------------------------------------------------------------------

    def emit(self, on_segment_end: Callable[[Sequence], None]) -> None:
        """Decode and deliver every chunk that is due; a finished sequence delivers its last
        chunk, leaves the batch, and is handed to `on_segment_end`. Each stream decodes alone:
        decoding several at once would save little on a CPU and would change their audio in
        the last bits, and a seeded request's audio must not depend on its company."""
        for sequence in list(self.rows):
            if not (sequence.finished or sequence.chunk_due(sequence.stream.job.chunks)):
                continue
            trim_samples = self._trim_pending(sequence) if sequence.finished else 0
            frames = len(sequence.pending)
            audio = sequence.decoder.decode(sequence.pending_codes()) if frames else torch.zeros(0)
            self._deliver(sequence, to_numpy(audio), frames, trim_samples)
            if sequence.finished:
                self.remove(sequence)
                on_segment_end(sequence)

    @staticmethod
    def _trim_pending(sequence: Sequence) -> int:
        """Drop a guarded tail's frames that are not decoded yet; returns the samples of the
        rest of it, already handed over in earlier chunks."""
        dropped = min(sequence.trim, len(sequence.pending))
        if dropped:
            del sequence.pending[-dropped:]
        return (sequence.trim - dropped) * SAMPLES_PER_FRAME

    def _deliver(self, sequence: Sequence, pcm: np.ndarray, frames: int, trim_samples: int = 0) -> None:
        sequence.pending.clear()
        sequence.chunks += 1
        stats = None
        if sequence.finished:
            stats = SegmentStats(
                index=sequence.segment,
                input_tokens=sequence.prompt.input_tokens,
                output_frames=sequence.frames - sequence.trim,
                max_new_tokens=sequence.budget,
                queued_ms=max(sequence.queued_ms, 0.0),
                load_ms=sequence.load_ms,
                generate_ms=(time.perf_counter() - sequence.started) * 1000,
                batch_max=sequence.batch_max,
                finish_reason=sequence.finish_reason or FinishReason.STOP,
                trimmed_frames=sequence.trim,
            )
        sequence.stream.deliver(
            AudioChunk(
                pcm=pcm,
                segment=sequence.segment,
                frames=frames,
                segment_end=sequence.finished,
                stats=stats,
                trim_samples=trim_samples,
            )
        )

    # ---- leaving -----------------------------------------------------------------------

    def remove(self, sequence: Sequence) -> None:
        """Free a sequence's row; the last row moves into it, keeping rows 0..n-1 in use."""
        row = sequence.slot
        last = self.rows[-1]
        if last is not sequence:
            self.model.cache.move(last.slot, row, last.position)
            self.model.state.move_row(last.slot, row)
            if self.model.guards is not None:
                self.model.guards.move(last.slot, row)
            last.slot = row
            self.rows[row] = last
        self.rows.pop()
        sequence.slot = -1
