"""Every due stream of a frame decoded together, from the per-row state of a BatchedCodec
(server/engine/codec/batched.py), one call per piece size, each a captured graph per (piece
size, batch bucket) on a GPU. The codes of all of them, the rows they belong to and where
their audio goes travel in one upload; the audio comes back in one copy (AudioBuffers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from server.engine.codec.batched import PIECE_FRAMES, BatchedCodec, pieces
from server.engine.codec.chunks import CODEBOOKS, AudioBuffers, AudioCopy, Work
from server.engine.device.runtime import Capturer, DeviceRuntime
from server.engine.frame.step import BATCH_BUCKETS, bucket_for, buckets_up_to
from server.engine.jobs import SAMPLES_PER_FRAME


class RowChunks:
    """The row strategy of a frame's chunks (inference thread only)."""

    def __init__(self, decoder: Any, rows: int, device: torch.device, runtime: DeviceRuntime) -> None:
        self.codec = BatchedCodec(decoder, rows)
        self._runtime = runtime
        self._device = device
        self._buckets = buckets_up_to(rows, BATCH_BUCKETS)
        largest = self._buckets[-1]
        # Per piece size, one static input per row: its row index, then its codes (one copy
        # fills both).
        self._inputs = {
            n: torch.zeros(largest, 1 + n * CODEBOOKS, dtype=torch.long, device=device) for n in PIECE_FRAMES
        }
        self._out = {
            n: torch.zeros(largest, n * SAMPLES_PER_FRAME, dtype=torch.float32, device=device) for n in PIECE_FRAMES
        }
        self._replays: dict[tuple[int, int], Callable[[], None]] = {}
        self._capturer: Capturer | None = None
        self._buffers = AudioBuffers(device, runtime)

    def open(self, row: int, ref_code: torch.Tensor | None) -> None:
        """A new stream in `row`; a cloned voice's reference codes are decoded first (their
        audio is the reference's, not wanted), so the state holds their context."""
        self.codec.reset(row)
        if ref_code is None:
            return
        done = 0
        for size in pieces(int(ref_code.shape[0])):
            self._inputs[size][:1, 0].fill_(row)
            self._inputs[size][:1, 1:].copy_(ref_code[done : done + size].reshape(1, -1))
            self._run(size, 1)
            done += size

    def move(self, source: int, target: int) -> None:
        self.codec.move(source, target)

    def _call(self, size: int, bucket: int) -> Callable[[], None]:
        inputs = self._inputs[size][:bucket]
        index, codes = inputs[:, 0], inputs[:, 1:].view(bucket, size, CODEBOOKS)

        def run() -> None:
            self._out[size][:bucket].copy_(self.codec.decode(index, codes))

        return run

    def _run(self, size: int, bucket: int) -> None:
        replay = self._replays.get((size, bucket)) or self._call(size, bucket)
        replay()

    def capture(self, capturer: Capturer) -> int:
        """Capture the call for every chunk size and batch bucket (at load, no stream open:
        the captures run over the scratch row)."""
        self._capturer = capturer
        for size in PIECE_FRAMES:
            self._inputs[size][:, 0].fill_(self.codec.scratch)
            for bucket in self._buckets:
                self._replays[(size, bucket)] = capturer(f"codec {size}x{bucket}", self._call(size, bucket))
        return len(self._replays)

    def release(self) -> None:
        self._replays.clear()
        if self._capturer is not None:
            self._capturer.release()
            self._capturer = None

    def decode(self, work: Work) -> AudioCopy:
        """Start decoding each row's frames; the audio of row i of `work` will be
        `AudioCopy.pcm(i)` once the copy has landed."""
        self._buffers.reserve(sum(len(frames) for _, _, frames in work))
        # A chunk is decoded as its pieces, largest first (13 frames: 8, then 4, then 1), so
        # one call per piece size serves every row in order; only 24 can repeat in a chunk.
        groups: dict[tuple[int, int], list[tuple[int, int, int]]] = {}  # (size, repeat) -> (row, first, frame)
        first_frame = 0
        for row, _, frames in work:
            done = 0
            seen: dict[int, int] = {}
            for size in pieces(len(frames)):
                repeat = seen[size] = seen.get(size, -1) + 1
                groups.setdefault((size, repeat), []).append((row, done, first_frame + done))
                done += size
            first_frame += len(frames)
        by_row = {row: frames for row, _, frames in work}
        staged: list[int] = []
        layout = []
        for (size, _), members in sorted(groups.items(), key=lambda item: (-item[0][0], item[0][1])):
            bucket = bucket_for(len(members), self._buckets)
            for row, first, _ in members:
                staged.append(row)
                staged.extend(code for frame in by_row[row][first : first + size] for code in frame)
            staged.extend(([self.codec.scratch] + [0] * (size * CODEBOOKS)) * (bucket - len(members)))
            layout.append((size, bucket, len(members), len(staged)))
            staged.extend(target + k for _, _, target in members for k in range(size))
        if staged:
            uploaded = self._runtime.upload(torch.tensor(staged, dtype=torch.long), self._device)
        audio_frames = self._buffers.audio.view(-1, SAMPLES_PER_FRAME)
        start = 0
        for size, bucket, count, targets_at in layout:
            self._inputs[size][:bucket].copy_(uploaded[start:targets_at].view(bucket, 1 + size * CODEBOOKS))
            self._run(size, bucket)
            made = self._out[size][:count].reshape(count * size, SAMPLES_PER_FRAME)
            audio_frames.index_copy_(0, uploaded[targets_at : targets_at + count * size], made)
            start = targets_at + count * size
        return self._buffers.send(work)
