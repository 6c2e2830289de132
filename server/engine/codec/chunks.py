"""The audio of one frame's due chunks, moved with one copy each way: the codes of every due
stream are staged in one pinned host buffer and copied to the device at once; each stream's
streaming decoder runs on its own slice (alone, so a seeded request's audio never depends on
its company); the audio of all of them is gathered in one device buffer and copied back to a
pinned host buffer asynchronously.

Nothing here waits for the device. On a GPU the host reads the audio after its next wait
(the following frame's output read, which is ordered after this copy on the stream), so a
chunk adds no host synchronisation of its own; `AudioCopy.ready()` says when it can be read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from server.engine.codec.batched import PIECE_FRAMES, BatchedCodec, pieces
from server.engine.codec.stream import StreamingDecoder
from server.engine.device.runtime import Capturer, DeviceRuntime, Event
from server.engine.frame.step import BATCH_BUCKETS, bucket_for, buckets_up_to
from server.engine.jobs import SAMPLES_PER_FRAME, ChunkPlan

CODEBOOKS = 16


def chunk_sizes(plan: ChunkPlan) -> range:
    """Every chunk size (codec frames) a stream's schedule can produce: the doubling sizes up
    to `plan.frames`, and any smaller remainder at a segment's end (what a captured decode
    would have to cover)."""
    return range(1, max(plan.frames, plan.first_frames) + 1)


@dataclass(frozen=True)
class AudioCopy:
    """Audio on its way to the host: each stream's samples as a range of `host`."""

    host: torch.Tensor
    ranges: list[tuple[int, int]]
    event: Event | None

    def wait(self) -> None:
        if self.event is not None:
            self.event.wait()

    def pcm(self, index: int) -> np.ndarray:
        """An owned float32 copy of one stream's audio (after the copy has landed)."""
        start, end = self.ranges[index]
        return np.array(self.host[start:end].numpy(), dtype=np.float32, copy=True)


class ChunkDecoder:
    """Decodes the due chunks of a frame on one model's device (inference thread only)."""

    def __init__(self, device: torch.device, runtime: DeviceRuntime) -> None:
        self._device = device
        self._runtime = runtime
        self._frames = 0  # capacity, in frames, of the staging buffers
        self._host_codes = torch.zeros(0, CODEBOOKS, dtype=torch.long)
        self._codes = torch.zeros(0, CODEBOOKS, dtype=torch.long)
        self._audio = torch.zeros(0)
        self._host_audio = torch.zeros(0)

    def _reserve(self, frames: int) -> None:
        """Grow the buffers (between frames, never inside one) to hold `frames` frames."""
        if frames <= self._frames:
            return
        size = max(frames, 2 * self._frames, 64)
        runtime, device = self._runtime, self._device
        self._host_codes = runtime.pinned(size, CODEBOOKS, dtype=torch.long)
        self._codes = torch.zeros(size, CODEBOOKS, dtype=torch.long, device=device)
        self._host_audio = runtime.pinned(size * SAMPLES_PER_FRAME, dtype=torch.float32)
        self._audio = torch.zeros(size * SAMPLES_PER_FRAME, dtype=torch.float32, device=device)
        self._frames = size

    def decode(self, work: list[tuple[StreamingDecoder, list[list[int]]]]) -> AudioCopy:
        """Start decoding each (decoder, frames of 16 codes) pair; the audio of pair i will be
        `AudioCopy.pcm(i)` once the copy has landed. A pair without frames gets no audio."""
        total = sum(len(frames) for _, frames in work)
        self._reserve(total)
        staged = self._host_codes.numpy()
        offset = 0
        for _, frames in work:
            if frames:
                staged[offset : offset + len(frames)] = frames
            offset += len(frames)
        codes = self._codes[:total]
        if total:
            codes.copy_(self._host_codes[:total], non_blocking=True)
        ranges: list[tuple[int, int]] = []
        frame = 0
        for decoder, frames in work:
            start = frame * SAMPLES_PER_FRAME
            if frames:
                wav = decoder.decode(codes[frame : frame + len(frames)])
                self._audio[start : start + wav.shape[0]].copy_(wav)
                frame += len(frames)
            ranges.append((start, frame * SAMPLES_PER_FRAME))
        samples = frame * SAMPLES_PER_FRAME
        if samples:
            self._host_audio[:samples].copy_(self._audio[:samples], non_blocking=True)
        return AudioCopy(self._host_audio, ranges, self._runtime.record() if samples else None)


class StreamChunks:
    """Each stream decodes alone with its own StreamingDecoder (synchronous devices: the CPU,
    where this keeps every stream's audio independent of its company to the last bit)."""

    def __init__(self, decoder: Any, device: torch.device, runtime: DeviceRuntime) -> None:
        self._decoder = decoder
        self._chunks = ChunkDecoder(device, runtime)

    def open(self, row: int, ref_code: torch.Tensor | None) -> StreamingDecoder:
        decoder = StreamingDecoder(self._decoder)
        if ref_code is not None:
            decoder.skip(ref_code)  # its audio is the reference's, not wanted
        return decoder

    def move(self, source: int, target: int) -> None:
        return None

    def decode(self, work: list[tuple[int, Any, list[list[int]]]]) -> AudioCopy:
        return self._chunks.decode([(decoder, frames) for _, decoder, frames in work])

    def capture(self, capturer: Capturer) -> int:
        return 0

    def release(self) -> None:
        return None


class RowChunks:
    """Every due stream of a frame decoded together, one call per chunk size (a captured graph
    per size and batch bucket on a GPU), from the per-row state of a BatchedCodec. The codes
    of all of them, the rows they belong to and where their audio goes travel in one upload;
    the audio comes back in one copy."""

    def __init__(self, decoder: Any, rows: int, device: torch.device, runtime: DeviceRuntime) -> None:
        self.codec = BatchedCodec(decoder, rows)
        self._runtime = runtime
        self._device = device
        self._buckets = buckets_up_to(rows, BATCH_BUCKETS)
        largest = self._buckets[-1]
        self._index = {n: torch.full((largest,), rows, dtype=torch.long, device=device) for n in PIECE_FRAMES}
        self._codes = {n: torch.zeros(largest, n, CODEBOOKS, dtype=torch.long, device=device) for n in PIECE_FRAMES}
        self._out = {
            n: torch.zeros(largest, n * SAMPLES_PER_FRAME, dtype=torch.float32, device=device) for n in PIECE_FRAMES
        }
        self._replays: dict[tuple[int, int], Callable[[], None]] = {}
        self._capturer: Capturer | None = None
        self._frames = 0
        self._audio = torch.zeros(0)
        self._host_audio = torch.zeros(0)

    def open(self, row: int, ref_code: torch.Tensor | None) -> None:
        """A new stream in `row`; a cloned voice's reference codes are decoded first (their
        audio is the reference's, not wanted), so the state holds their context."""
        self.codec.reset(row)
        if ref_code is None:
            return
        done = 0
        for size in pieces(int(ref_code.shape[0])):
            self._index[size][:1].fill_(row)
            self._codes[size][:1].copy_(ref_code[done : done + size].unsqueeze(0))
            self._run(size, 1)
            done += size

    def move(self, source: int, target: int) -> None:
        self.codec.move(source, target)

    def _call(self, size: int, bucket: int) -> Callable[[], None]:
        def run() -> None:
            self._out[size][:bucket].copy_(self.codec.decode(self._index[size][:bucket], self._codes[size][:bucket]))

        return run

    def _run(self, size: int, bucket: int) -> None:
        replay = self._replays.get((size, bucket)) or self._call(size, bucket)
        replay()

    def capture(self, capturer: Capturer) -> int:
        """Capture the call for every chunk size and batch bucket (at load, no stream open:
        the captures run over the scratch row)."""
        self._capturer = capturer
        for size in PIECE_FRAMES:
            self._index[size].fill_(self.codec.scratch)
            for bucket in self._buckets:
                self._replays[(size, bucket)] = capturer(f"codec {size}x{bucket}", self._call(size, bucket))
        return len(self._replays)

    def release(self) -> None:
        self._replays.clear()
        if self._capturer is not None:
            self._capturer.release()
            self._capturer = None

    def _reserve(self, frames: int) -> None:
        if frames <= self._frames:
            return
        size = max(frames, 2 * self._frames, 64)
        self._host_audio = self._runtime.pinned(size * SAMPLES_PER_FRAME, dtype=torch.float32)
        self._audio = torch.zeros(size * SAMPLES_PER_FRAME, dtype=torch.float32, device=self._device)
        self._frames = size

    def decode(self, work: list[tuple[int, Any, list[list[int]]]]) -> AudioCopy:
        total = sum(len(frames) for _, _, frames in work)
        self._reserve(total)
        # Rounds of pieces: a chunk of 13 frames is decoded as 8, then 4, then 1.
        groups: dict[tuple[int, int], list[tuple[int, int, int]]] = {}  # (round, size) -> (row, first, audio frame)
        first_frame = 0
        ranges = []
        for row, _, frames in work:
            done = 0
            for round_index, size in enumerate(pieces(len(frames))):
                groups.setdefault((round_index, size), []).append((row, done, first_frame + done))
                done += size
            ranges.append((first_frame * SAMPLES_PER_FRAME, (first_frame + len(frames)) * SAMPLES_PER_FRAME))
            first_frame += len(frames)
        by_row = {row: frames for row, _, frames in work}
        staged: list[int] = []
        layout = []
        for (_, size), members in sorted(groups.items()):
            bucket = bucket_for(len(members), self._buckets)
            index = [row for row, _, _ in members] + [self.codec.scratch] * (bucket - len(members))
            codes: list[list[int]] = []
            for row, first, _ in members:
                codes.extend(by_row[row][first : first + size])
            codes.extend([[0] * CODEBOOKS] * ((bucket - len(members)) * size))
            targets = [target + k for _, _, target in members for k in range(size)]
            layout.append((size, bucket, len(members), len(staged)))
            staged += index + [code for frame in codes for code in frame] + targets
        if staged:
            uploaded = self._runtime.upload(torch.tensor(staged, dtype=torch.long), self._device)
        audio_frames = self._audio.view(-1, SAMPLES_PER_FRAME)
        for size, bucket, count, offset in layout:
            codes_at = offset + bucket
            targets_at = codes_at + bucket * size * CODEBOOKS
            self._index[size][:bucket].copy_(uploaded[offset:codes_at])
            self._codes[size][:bucket].copy_(uploaded[codes_at:targets_at].view(bucket, size, CODEBOOKS))
            self._run(size, bucket)
            made = self._out[size][:count].reshape(count * size, SAMPLES_PER_FRAME)
            audio_frames.index_copy_(0, uploaded[targets_at : targets_at + count * size], made)
        samples = total * SAMPLES_PER_FRAME
        if samples:
            self._host_audio[:samples].copy_(self._audio[:samples], non_blocking=True)
        return AudioCopy(self._host_audio, ranges, self._runtime.record() if samples else None)
