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

from dataclasses import dataclass

import numpy as np
import torch

from server.engine.codec.stream import StreamingDecoder
from server.engine.device.runtime import DeviceRuntime, Event
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
