"""The sequences generated together on one loaded model, and what happens to them between
frames: a newcomer is prefilled on its own and joins; one step produces a frame for every
sequence that may run; frames become audio chunks when a chunk is due; finished, cancelled and
timed-out sequences leave and free their row (inference thread only)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch

from server.engine.codec import StreamingDecoder, to_numpy
from server.engine.errors import InvalidSynthesisInput
from server.engine.guards import VERDICT_REASONS, GuardBank, package_encoder, quiet_codes
from server.engine.jobs import SAMPLES_PER_FRAME, AudioChunk, FinishReason, SegmentStats
from server.engine.prompt import PieceText
from server.engine.sampling import RowSampling, StageBatch, draw, process_first_codebook
from server.engine.sequence import JobStream, Sequence
from server.text.budget import max_new_tokens_for

if TYPE_CHECKING:
    from server.engine.qwen import QwenBackend

log = logging.getLogger("qwen3-tts.engine")


class ActiveBatch:
    def __init__(self, backend: QwenBackend, capacity: int) -> None:
        self.backend = backend
        self.model = backend.frames
        self.capacity = capacity
        self.rows: list[Sequence] = []  # row i lives in KV slot i
        limits = backend.guard_limits
        encode = package_encoder(backend.speech_tokenizer)
        quiet = quiet_codes(encode, limits.silence_dbfs, self.model.vocab, self.model.device)
        self.guards = GuardBank(limits, capacity, quiet)

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
            prompt_items = job.clone.prompt if job.clone.prompt is not None else self.backend.clone_prompt(job.clone)
            clone = prompt_items[0]
        prompt = self.backend.prompts.build(
            PieceText(text=text, language=job.language, speaker=job.speaker, instruct=job.instruct, clone=clone)
        )
        room = self.model.max_length - prompt.length + 1
        if room < 2:
            raise InvalidSynthesisInput(
                f"the prompt of {prompt.length} tokens leaves no room in MAX_SEQUENCE_LENGTH "
                f"({self.model.max_length}); shorten the text or the reference"
            )
        seed = None if job.seed is None else job.seed + index
        generator = None if seed is None else torch.Generator(device=self.model.device).manual_seed(seed)
        decoder = StreamingDecoder(self.backend.codec_decoder)
        if prompt.ref_code is not None:
            decoder.skip(prompt.ref_code)  # its audio is the reference's, not wanted
        sequence = Sequence(
            stream=stream,
            segment=index,
            text=text,
            prompt=prompt,
            sampling=sampling,
            generator=generator,
            budget=min(max_new_tokens_for(text, job.token_cap), room),
            decoder=decoder,
            queued_ms=(started - stream.segment_ready_at) * 1000 - load_ms,
            load_ms=load_ms,
            started=started,
        )
        prefilled = self.model.prefill(prompt.embeds)
        sequence.slot = len(self.rows)
        self.model.cache.store_prefill(sequence.slot, prefilled.cache)
        sequence.position = prompt.length
        sequence.hidden = prefilled.hidden
        sequence.seen = torch.zeros(self.model.vocab, dtype=torch.bool, device=self.model.device)
        self.guards.reset(sequence.slot, prompt.input_tokens)
        self.rows.append(sequence)
        try:
            self._sample_first([sequence], prefilled.logits)
        except BaseException:
            self.remove(sequence)
            raise
        stream.next_segment = index + 1
        return sequence

    # ---- one frame ---------------------------------------------------------------------

    def step(self) -> int:
        """One frame for every sequence that may run (not finished, stream not backlogged).
        Returns how many ran."""
        running = [s for s in self.rows if not s.finished and not s.stream.backlogged]
        if not running:
            return 0
        for sequence in running:
            sequence.batch_max = max(sequence.batch_max, len(running))
        tokens = torch.cat([s.token for s in running if s.token is not None])
        hidden = torch.cat([s.hidden for s in running if s.hidden is not None])
        generators = [s.generator for s in running]
        predictor = StageBatch.of([s.sampling.predictor for s in running], self.model.device)
        rest = self.model.predict(hidden, tokens, predictor, generators)
        continuing: list[int] = []
        for i, sequence in enumerate(running):
            sequence.pending.append(torch.cat([tokens[i : i + 1], rest[i]]))
            sequence.frames += 1
            sequence.stream.frames_generated += 1
            # The package stops after sampling `budget` tokens; the last one never gets a frame.
            if sequence.sampled + 1 >= sequence.budget:
                sequence.finish(FinishReason.LENGTH)
            else:
                continuing.append(i)
        if continuing:
            self._advance([running[i] for i in continuing], tokens[continuing], rest[continuing])
        return len(running)

    def _advance(self, sequences: list[Sequence], tokens: torch.Tensor, rest: torch.Tensor) -> None:
        """The talker's step: each row's next input is its frame's embedding plus its next
        text embedding (or padding once the text is all fed)."""
        embeds = self.model.frame_embedding(tokens, rest)
        text = [
            s.prompt.trailing[:, s.fed : s.fed + 1] if s.fed < s.prompt.trailing.shape[1] else s.prompt.tts_pad
            for s in sequences
        ]
        embeds = embeds + torch.cat(text, dim=0)
        hidden, logits = self.model.decode([s.slot for s in sequences], [s.position for s in sequences], embeds)
        for i, sequence in enumerate(sequences):
            sequence.hidden = hidden[i : i + 1]
            sequence.position += 1
            sequence.fed += 1
        self._sample_first(sequences, logits)

    def _sample_first(self, sequences: list[Sequence], logits: torch.Tensor) -> None:
        """Sample each row's next codebook-0 token; end of speech finishes the sequence."""
        device = self.model.device
        seen = torch.stack([s.seen for s in sequences if s.seen is not None])
        penalty = torch.tensor([[s.sampling.repetition_penalty] for s in sequences], dtype=torch.float32, device=device)
        generated = torch.tensor([s.sampled for s in sequences], dtype=torch.long, device=device)
        processed = process_first_codebook(logits, seen, penalty, generated, self.model.eos, self.model.suppressed)
        talker = StageBatch.of([s.sampling.talker for s in sequences], device)
        tokens = draw(processed, talker, [s.generator for s in sequences])
        ended = tokens == self.model.eos
        if self.guards.active:
            text_done = torch.tensor([s.text_fed for s in sequences], dtype=torch.bool, device=device)
            verdict, trim = self.guards.observe([s.slot for s in sequences], tokens, text_done)
            flags = torch.stack((ended.long(), verdict, trim)).tolist()  # one device-to-host copy
        else:
            flags = [ended.long().tolist(), [0] * len(sequences), [0] * len(sequences)]
        for i, sequence in enumerate(sequences):
            token = tokens[i : i + 1]
            sequence.token = token
            sequence.sampled += 1
            if sequence.seen is not None:
                sequence.seen[token] = True
            if flags[0][i]:
                sequence.finish(FinishReason.STOP)
            elif flags[1][i]:
                # The token that tripped the guard never becomes a frame: trim the others.
                sequence.finish(VERDICT_REASONS[flags[1][i]], trim=max(flags[2][i] - 1, 0))

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
            audio = sequence.decoder.decode(torch.stack(sequence.pending)) if frames else torch.zeros(0)
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
            self.guards.move(last.slot, row)
            last.slot = row
            self.rows[row] = last
        self.rows.pop()
        sequence.slot = -1
