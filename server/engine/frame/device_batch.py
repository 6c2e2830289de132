"""The batch's state on the device: every per-row value a frame reads or advances, in static
buffers of MAX_BATCH_SIZE rows allocated when the model loads. A frame runs over the first
`bucket` rows (active sequences live in rows 0..n-1, padding above them); its two functions
(server/engine/frame/step.py) read and write these buffers in place, so their addresses never
change and a captured graph can replay over them.

The host writes a row when its sequence joins (`start_row`) and moves one when another leaves
(`move_row`), both between frames. Per frame it stages one tensor through a pinned buffer,
`inputs` (which rows run, and the keys of the frame's random draws), and reads one back: the
frame's codes, end reasons and guard trims, packed into `out` and copied in one asynchronous copy into
pinned memory (`fetch_outputs`).
"""

from __future__ import annotations

import numpy as np
import torch

from server.engine.device.runtime import Event, runtime_for
from server.engine.frame.sampling import RowSampling, StageTensors


class DeviceBatch:
    def __init__(
        self,
        rows: int,
        hidden_size: int,
        embed_size: int,
        vocab: int,
        groups: int,
        text_length: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        def longs(*shape: int) -> torch.Tensor:
            return torch.zeros(*shape, dtype=torch.long, device=device)

        self.rows = rows
        self.groups = groups
        self.text_length = text_length
        self.device = device
        # The frame's input: the codebook-0 token sampled last and the talker's hidden state.
        self.token = longs(rows)
        self.hidden = torch.zeros(rows, 1, hidden_size, dtype=dtype, device=device)
        self.position = longs(rows)  # where the row's next key/value is written
        self.fed = longs(rows)  # decode steps taken: the next trailing text embedding
        self.generated = longs(rows)  # codebook-0 tokens sampled (the frame index of the next one)
        self.budget = longs(rows)  # max_new_tokens of the row's segment
        self.seen = torch.zeros(rows, vocab, dtype=torch.bool, device=device)  # for the repetition penalty
        self.penalty = torch.ones(rows, 1, dtype=torch.float32, device=device)
        self.talker = StageTensors(rows, device)
        self.predictor = StageTensors(rows, device)
        # The text fed one token per frame after the prompt, then tts_pad.
        self.trailing = torch.zeros(rows, text_length, embed_size, dtype=dtype, device=device)
        self.trailing_length = longs(rows)
        self.tts_pad = torch.zeros(rows, 1, embed_size, dtype=dtype, device=device)
        # Staged per frame: column 0 whether the row runs (the others, backlogged, finished or
        # padding, stay as they are), columns 1..16 the keys of its draws (counter_rng.frame_keys).
        self.inputs = longs(rows, groups + 1)
        self.runs = self.inputs[:, 0]  # named views of its columns
        self.draw_keys = self.inputs[:, 1:]
        # Between (B) and (A): the frame's summed code embedding, the talker's next input.
        self.frame_embeds = torch.zeros(rows, 1, embed_size, dtype=dtype, device=device)
        # The frame's output, in one tensor for one copy: 16 codes, the end reason
        # (server/engine/frame/step.py) and the frames a runaway guard trims, per row.
        self.out = longs(rows, groups + 2)
        self.codes_out = self.out[:, :groups]  # named views of its columns
        self.reason_out = self.out[:, groups]
        self.trim_out = self.out[:, groups + 1]
        self._runtime = runtime_for(device)
        self.host_inputs = self._runtime.pinned(rows, groups + 1, dtype=torch.long)
        self.host_out = self._runtime.pinned(rows, groups + 2, dtype=torch.long)
        self._copied: Event | None = None

    def static_tensors(self) -> dict[str, torch.Tensor]:
        """Every buffer a frame touches, by name (for the address checks)."""
        named = {name: value for name, value in vars(self).items() if isinstance(value, torch.Tensor)}
        for stage in ("talker", "predictor"):
            for index, tensor in enumerate(getattr(self, stage).tensors()):
                named[f"{stage}.{index}"] = tensor
        return named

    # ---- between frames (host) -------------------------------------------------------

    def start_row(
        self,
        row: int,
        *,
        token: torch.Tensor,
        hidden: torch.Tensor,
        position: int,
        budget: int,
        sampling: RowSampling,
        trailing: torch.Tensor,
        tts_pad: torch.Tensor,
    ) -> None:
        """Write a newcomer's row: its first token (already sampled), the prefill's hidden
        state, its settings, and its trailing text ([1, T, D], T <= text_length)."""
        # Device values are copied on the device; host values are written with fill_, whose
        # value travels as a kernel argument: a single-element `tensor[row] = value` would be a
        # blocking copy from pageable memory, a wait for the device each.
        self.token[row] = token[0]
        self.hidden[row] = hidden[0]
        self.position[row].fill_(position)
        self.fed[row].fill_(0)
        self.generated[row].fill_(1)
        self.budget[row].fill_(budget)
        self.seen[row].fill_(False)
        self.seen[row].scatter_(0, token[:1], True)
        self.penalty[row, 0].fill_(sampling.repetition_penalty)
        self.talker.write(row, sampling.talker)
        self.predictor.write(row, sampling.predictor)
        length = trailing.shape[1]
        self.trailing[row, :length] = trailing[0]
        self.trailing_length[row].fill_(length)
        self.tts_pad[row] = tts_pad[0]

    def move_row(self, source: int, target: int) -> None:
        """Move a row's state (when the row below it leaves)."""
        for name in (
            "token",
            "hidden",
            "position",
            "fed",
            "generated",
            "budget",
            "seen",
            "penalty",
            "trailing",
            "trailing_length",
            "tts_pad",
        ):
            tensor = getattr(self, name)
            tensor[target] = tensor[source]
        self.talker.move(source, target)
        self.predictor.move(source, target)

    # ---- per frame (host) -----------------------------------------------------------

    def stage_inputs(self, flags: list[bool], keys: np.ndarray, bucket: int) -> None:
        """Which of the bucket's first rows run and their keys: written into the pinned buffer
        through numpy (no tensor operation), then one copy to the device."""
        staged = self.host_inputs.numpy()
        staged[:bucket] = 0
        staged[: len(flags), 0] = flags
        staged[: len(flags), 1:] = keys
        self.inputs[:bucket].copy_(self.host_inputs[:bucket], non_blocking=True)

    def fetch_outputs(self, bucket: int) -> None:
        """Start the one copy of the frame's codes and end flags to the host."""
        self.host_out[:bucket].copy_(self.out[:bucket], non_blocking=True)
        self._copied = self._runtime.record()

    def outputs(self, count: int) -> list[list[int]]:
        """The first `count` rows of the frame's output, [16 codes..., end reason, trim], once the copy
        has landed (the frame's one wait for the device)."""
        if self._copied is not None:
            self._copied.wait()
            self._copied = None
        rows: list[list[int]] = self.host_out.numpy()[:count].tolist()
        return rows
