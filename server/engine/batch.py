"""The sequences generated together on one loaded model, and what happens to them between
frames: a newcomer is prefilled on its own and joins; one step produces a frame for every
sequence that may run; frames become audio chunks when a chunk is due; finished, cancelled and
timed-out sequences leave and free their row (inference thread only)."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from server.engine.codec.chunks import AudioCopy, StreamChunks
from server.engine.codec.rows import RowChunks
from server.engine.device.runtime import runtime_for
from server.engine.errors import InvalidSynthesisInput
from server.engine.frame.counter_rng import frame_keys
from server.engine.frame.reasons import EndReason
from server.engine.frame.sampling import RowSampling, StageTensors, candidates_for, uses_top_p
from server.engine.frame.step import FrameModel, FrameShape, Prefilled, bucket_for
from server.engine.jobs import SAMPLES_PER_FRAME, AudioChunk, CloneVoice, FinishReason, SegmentStats
from server.engine.prompt import PieceText, PromptBuilder
from server.engine.sequence import JobStream, Sequence, segment_seed
from server.text.budget import max_new_tokens_for

log = logging.getLogger("qwen3-tts.engine")

# The frame's end reasons (server/engine/frame/step.py) as the request reports them.
FINISH_REASONS = {
    EndReason.END_OF_SPEECH: FinishReason.STOP,
    EndReason.TOKEN_BUDGET: FinishReason.LENGTH,
    EndReason.SILENCE_GUARD: FinishReason.SILENCE,
    EndReason.REPETITION_GUARD: FinishReason.REPETITION,
    EndReason.TAIL_GUARD: FinishReason.LENGTH,
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
        # Runs one frame: eagerly, or by replaying captured graphs (server/engine/frame/graphs.py).
        self.runner = runner or self.run_eager
        self.rows: list[Sequence] = []  # row i lives in KV slot i and device row i
        self.joining: list[Sequence] = []  # prompts built, waiting for the tick's prefill
        self.runtime = runtime_for(frames.device)
        # Where the device runs asynchronously (a GPU), the due streams of a frame decode
        # together from per-row state, in captured graphs; on the CPU each decodes alone.
        self.codec: StreamChunks | RowChunks = (
            RowChunks(codec_decoder, capacity, frames.device, self.runtime)
            if self.runtime.asynchronous
            else StreamChunks(codec_decoder, frames.device, self.runtime)
        )
        # Chunks decoded, their audio on its way to the host: (copy, [(sequence, index in the
        # copy, frames, trim samples)], what to call when a segment's last chunk is delivered).
        self._in_flight: deque[tuple[AudioCopy, list[tuple[Sequence, int, int, int]], Callable[[Sequence], None]]] = (
            deque()
        )

    @property
    def audio_in_flight(self) -> int:
        """Copies of decoded chunks' audio not delivered yet (one per emit that had chunks due)."""
        return len(self._in_flight)

    @property
    def free(self) -> int:
        return self.capacity - len(self.rows) - len(self.joining)

    # ---- joining -----------------------------------------------------------------------

    def start(self, stream: JobStream, load_ms: float, sampling: RowSampling) -> Sequence:
        """Prefill the stream's next segment and give it a row (with any other joining
        sequence). Raises InvalidSynthesisInput when the model refuses its input."""
        sequence = self.join(stream, load_ms, sampling)
        self.admit()
        return sequence

    def join(self, stream: JobStream, load_ms: float, sampling: RowSampling) -> Sequence:
        """Build the prompt of the stream's next segment; it is prefilled and takes a row at
        the next `admit`, with the tick's other newcomers. Raises InvalidSynthesisInput when
        the model refuses its input."""
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
            queued_ms=(started - stream.segment_ready_at) * 1000 - load_ms,
            load_ms=load_ms,
            started=started,
        )
        stream.next_segment = index + 1
        self.joining.append(sequence)
        return sequence

    def admit(self) -> list[Sequence]:
        """Prefill the joining sequences and give each a row. Where the device runs
        asynchronously (a GPU) a tick's newcomers are prefilled together, one forward for all
        (right-padded: causal attention never looks at the padding); on the CPU each alone,
        as the package prefills it, to the last bit. A failure leaves none of them joining."""
        joining, self.joining = self.joining, []
        if not joining:
            return []
        prompts = [sequence.prompt.embeds for sequence in joining]
        if self.runtime.asynchronous and len(joining) > 1:
            prefilled = self.model.prefill_many(prompts)
        else:
            prefilled = [self.model.prefill(embeds) for embeds in prompts]
        for sequence, prefill in zip(joining, prefilled, strict=True):
            self._take_row(sequence, prefill)
        return joining

    def _take_row(self, sequence: Sequence, prefilled: Prefilled) -> None:
        prompt, sampling = sequence.prompt, sequence.sampling
        # End of speech is banned for the first tokens, so the first one never ends the segment.
        token = self.model.first_token(
            prefilled.logits,
            StageTensors.of([sampling.talker], self.model.device),
            sampling.repetition_penalty,
            sequence.seed,
            0,
        )
        sequence.slot = len(self.rows)
        sequence.decoder = self.codec.open(sequence.slot, prompt.ref_code)
        self.model.cache.store_prefill(sequence.slot, prefilled.cache, prefilled.row, prompt.length)
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
        outputs = model.state.outputs(len(self.rows))  # the frame's one wait for the device
        self.flush(landed=True)  # the last frame's audio, copied before this frame's output, landed too
        groups = model.groups
        for sequence, runs, row in zip(self.rows, flags, outputs, strict=True):
            if not runs:
                continue
            sequence.pending.append(row[:groups])
            sequence.frames += 1
            sequence.stream.frames_generated += 1
            if row[groups]:
                sequence.finish(FINISH_REASONS[EndReason(row[groups])], trim=row[groups + 1])
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
        """Decode every chunk that is due; a finished sequence's last chunk is among them, and
        it leaves the batch at once. The audio reaches the host with one copy for all of them;
        each chunk is delivered (and a finished sequence handed to `on_segment_end`, after its
        last chunk) once that copy has landed: at once where the device is synchronous (the
        CPU), otherwise after the next frame's output read, which waits for it anyway, or
        now when no frame will run. On the CPU each stream decodes alone (its audio
        independent of its company to the last bit); on a GPU the due streams decode
        together (server/engine/codec/rows.py)."""
        due = [s for s in self.rows if s.finished or s.chunk_due(s.stream.job.chunks)]
        if due:
            self.flush()  # the staging buffers are free once the previous copy has landed
            trims = [self._trim_pending(s) if s.finished else 0 for s in due]
            copy = self.codec.decode([(s.slot, s.decoder, s.pending) for s in due])
            deliveries = []
            for index, (sequence, trim_samples) in enumerate(zip(due, trims, strict=True)):
                deliveries.append((sequence, index, len(sequence.pending), trim_samples))
                sequence.pending = []
                if sequence.finished:
                    self.remove(sequence)
            self._in_flight.append((copy, deliveries, on_segment_end))
        if not self.runtime.asynchronous or not any(not s.finished and not s.stream.backlogged for s in self.rows):
            self.flush()

    def flush(self, landed: bool = False) -> None:
        """Deliver the chunks whose audio is on its way to the host, waiting for the copies
        unless they have `landed` (a later wait on the same stream covered them)."""
        while self._in_flight:
            copy, deliveries, on_segment_end = self._in_flight.popleft()
            if not landed:
                copy.wait()
            for sequence, index, frames, trim_samples in deliveries:
                self._deliver(sequence, copy.pcm(index), frames, trim_samples)
                if sequence.finished:
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

    def fail(self, error: BaseException) -> None:
        """End every sequence with `error` (a failed frame, an unload). Audio already decoded
        still reaches its listener when it can; where even that fails, its stream gets the
        error too, so no consumer waits for a chunk that will never come."""
        try:
            self.flush()
        except Exception:
            log.exception("audio copy failed")
            while self._in_flight:
                _, deliveries, _ = self._in_flight.popleft()
                for sequence, *_ in deliveries:
                    sequence.stream.deliver(error)
        for sequence in list(self.rows):
            self.remove(sequence)
            sequence.stream.deliver(error)

    def remove(self, sequence: Sequence) -> None:
        """Free a sequence's row; the last row moves into it, keeping rows 0..n-1 in use."""
        row = sequence.slot
        last = self.rows[-1]
        if last is not sequence:
            self.model.cache.move(last.slot, row, last.position)
            self.model.state.move_row(last.slot, row)
            self.codec.move(last.slot, row)
            if self.model.guards is not None:
                self.model.guards.move(last.slot, row)
            last.slot = row
            self.rows[row] = last
        self.rows.pop()
        sequence.slot = -1
