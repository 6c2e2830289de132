"""The audio of one frame's due chunks, with one copy each way, in one of two ways:
- `StreamChunks` (synchronous devices: the CPU): each stream's own StreamingDecoder decodes
  its frames alone, so a seeded request's audio never depends on its company;
- `RowChunks` (server/engine/codec/rows.py; a GPU): every due stream decoded together from
  per-row state, replayed per (piece size, batch bucket).
Either way the codes go to the device in one copy and the audio of every due stream comes
back in one asynchronous copy into pinned memory (`AudioCopy`). Nothing here waits for the
device: on a GPU the host reads the audio after its next wait (the following frame's output
read, queued after this copy on the same stream), so a chunk adds no host sync of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from server.engine.codec.stream import StreamingDecoder
from server.engine.device.runtime import Capturer, DeviceRuntime, Event
from server.engine.jobs import SAMPLES_PER_FRAME, ChunkPlan

CODEBOOKS = 16
# One due stream's work: its row, its own decoder (StreamChunks only), its frames of 16 codes.
Work = list[tuple[int, Any, list[list[int]]]]


def chunk_sizes(plan: ChunkPlan) -> range:
    """Every chunk size (codec frames) a stream's schedule can produce: the doubling sizes up
    to `plan.frames`, and any smaller remainder at a segment's end."""
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


class AudioBuffers:
    """A frame's audio on the device and its pinned copy on the host, grown between frames
    (never inside one) to what a frame needs."""

    def __init__(self, device: torch.device, runtime: DeviceRuntime) -> None:
        self.device = device
        self.runtime = runtime
        self.frames = 0
        self.audio = torch.zeros(0)
        self._host = torch.zeros(0)

    def reserve(self, frames: int) -> bool:
        """Room for `frames` frames; True when the buffers were made anew."""
        if frames <= self.frames:
            return False
        self.frames = max(frames, 2 * self.frames, 64)
        self._host = self.runtime.pinned(self.frames * SAMPLES_PER_FRAME, dtype=torch.float32)
        self.audio = torch.zeros(self.frames * SAMPLES_PER_FRAME, dtype=torch.float32, device=self.device)
        return True

    def send(self, work: Work) -> AudioCopy:
        """Start the copy of the audio of `work`, laid out stream after stream."""
        ranges, start = [], 0
        for _, _, frames in work:
            end = start + len(frames) * SAMPLES_PER_FRAME
            ranges.append((start, end))
            start = end
        if start:
            self._host[:start].copy_(self.audio[:start], non_blocking=True)
        return AudioCopy(self._host, ranges, self.runtime.record() if start else None)


class StreamChunks:
    """Each stream decodes alone with its own StreamingDecoder (synchronous devices: the CPU,
    where this keeps every stream's audio independent of its company to the last bit)."""

    def __init__(self, decoder: Any, device: torch.device, runtime: DeviceRuntime) -> None:
        self._decoder = decoder
        self._buffers = AudioBuffers(device, runtime)
        self._host_codes = torch.zeros(0, CODEBOOKS, dtype=torch.long)
        self._codes = torch.zeros(0, CODEBOOKS, dtype=torch.long)

    def open(self, row: int, ref_code: torch.Tensor | None) -> StreamingDecoder:
        decoder = StreamingDecoder(self._decoder)
        if ref_code is not None:
            decoder.skip(ref_code)  # its audio is the reference's, not wanted
        return decoder

    def move(self, source: int, target: int) -> None:
        return None

    def decode(self, work: Work) -> AudioCopy:
        """Start decoding each stream's frames; the audio of stream i will be
        `AudioCopy.pcm(i)` once the copy has landed."""
        buffers = self._buffers
        total = sum(len(frames) for _, _, frames in work)
        if buffers.reserve(total):
            self._host_codes = buffers.runtime.pinned(buffers.frames, CODEBOOKS, dtype=torch.long)
            self._codes = torch.zeros(buffers.frames, CODEBOOKS, dtype=torch.long, device=buffers.device)
        staged = self._host_codes.numpy()
        frame = 0
        for _, _, frames in work:
            if frames:
                staged[frame : frame + len(frames)] = frames
            frame += len(frames)
        if total:
            self._codes[:total].copy_(self._host_codes[:total], non_blocking=True)
        frame = 0
        for _, decoder, frames in work:
            if frames:
                wav = decoder.decode(self._codes[frame : frame + len(frames)])
                start = frame * SAMPLES_PER_FRAME
                buffers.audio[start : start + wav.shape[0]].copy_(wav)
                frame += len(frames)
        return buffers.send(work)

    def capture(self, capturer: Capturer) -> int:
        return 0

    def release(self) -> None:
        return None
