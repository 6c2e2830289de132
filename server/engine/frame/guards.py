"""Runaway guards: per row, after a segment's text has all been fed, end a tail that is
near-silent, a codebook-0 loop, or longer than the text can explain.

Qwen3-TTS sometimes never emits end-of-speech: it settles into near-silent room tone
(sglang-omni#1179), loops garbled audio (vllm-omni#4815, #6158), or babbles until the frame
budget. The budget (about 8 frames a word) bounds the damage; these guards end it sooner and
name the ending (`FinishReason`).

The signal is the codebook-0 token of each frame, never the decoded audio: a frame's cb0 is
on the device the moment it is sampled, while its audio exists only once its chunk is decoded
(up to 24 frames later, outside the frame). Codes keep the guards inside the frame, as tensor
operations with no host synchronisation and no data-dependent Python control flow, so they can
run inside a captured CUDA graph. A frame is *quiet* when its cb0 is one the checkpoint's own
codec encoder produces for audio below GUARD_SILENCE_DBFS (digital silence and noise at that
level), found once per loaded model (`quiet_codes`, server/engine/slots/quiet_codes.py): a lookup table [V] bool.

The guards, each off at 0 (settings in server/config.py):
- silence: `silence_frames` consecutive quiet frames after the text was fed -> SILENCE; those
  frames are trimmed;
- repetition: the last `loop_frames` frames after the text repeat themselves with some period
  p <= MAX_PERIOD in at least LOOP_MATCH of their positions (quiet frames never count as a
  match, so a pause is the silence guard's business) -> REPETITION; the loop less its first
  period is trimmed;
- tail: more than `tail_ratio * text_tokens + TAIL_FLOOR_FRAMES` frames after the text was
  fed -> LENGTH (nothing trimmed: it is speech-like, just too long).
No guard looks at a frame sampled before the segment's text was all fed.

State, per KV slot, on the model's device (`GuardBank`):
    history   long [S, H]   the last H cb0 tokens (-1 = none yet), H = loop_frames + MAX_PERIOD
    quiet     bool [S, H]   whether each of them is quiet
    silent    long [S]      consecutive quiet frames after the text
    after     long [S]      frames after the text
    tail_max  long [S]      the tail guard's limit for the row's text
`guard_frame` is the pure function over the gathered rows; the bank gathers and scatters by
slot, resets a slot when a segment starts and moves a slot when rows are compacted.

Call site: the talker's step, function (A) of the frame (server/engine/frame/step.py,
`FrameModel.extra_stops`), right after a row's next cb0 token is drawn. `GuardBank.frame` runs
over the batch's first rows (row i is KV slot i) with `text_done = fed + 1 >= trailing_length`;
its verdicts become end reasons beside end of speech and the token budget (`end_reason`: the
budget, then end of speech, win), and its trims join the codes in the frame's one copy back.
The host then finishes the row with its reason and drops its trimmed frames. `observe` is the
same function over rows picked by slot, for tests on made-up rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from server.engine.frame.reasons import EndReason

# Verdicts, as the tensor holds them: the frame's end reasons.
NONE, SILENCE, REPETITION, TAIL = (
    EndReason.GOES_ON,
    EndReason.SILENCE_GUARD,
    EndReason.REPETITION_GUARD,
    EndReason.TAIL_GUARD,
)

# The longest loop period looked for: 32 frames = 2.56 s (a repeated phrase, not a sentence).
MAX_PERIOD = 32
# Share of a window's positions that must equal the frame one period earlier.
LOOP_MATCH = 0.9
# The tail guard's allowance on top of `tail_ratio` frames per text token: 4 s.
TAIL_FLOOR_FRAMES = 50


@dataclass(frozen=True)
class GuardLimits:
    """The guards' settings (0 turns a guard off). The defaults are conservative: a natural
    pause is well under 3 s; natural speech never repeats its cb0 tokens with a fixed period for
    4 s; real speech runs about 3 frames per text token after the text is fed."""

    silence_frames: int = 38  # ~3 s of quiet after the text
    silence_dbfs: float = -50.0  # the level below which audio counts as quiet
    loop_frames: int = 50  # ~4 s of cb0 repeating itself
    tail_ratio: float = 8.0  # frames per text token after the text, plus TAIL_FLOOR_FRAMES

    def tail_limit(self, text_tokens: int) -> int:
        """The tail guard's limit in frames for a text of `text_tokens` tokens (-1: off)."""
        if self.tail_ratio <= 0:
            return -1
        return math.ceil(self.tail_ratio * max(text_tokens, 1)) + TAIL_FLOOR_FRAMES


def guard_frame(
    history: torch.Tensor,
    quiet_history: torch.Tensor,
    silent: torch.Tensor,
    after: torch.Tensor,
    tail_max: torch.Tensor,
    tokens: torch.Tensor,
    text_done: torch.Tensor,
    quiet_table: torch.Tensor,
    loop_index: torch.Tensor | None,
    silence_frames: int,
    loop_frames: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One frame of the guards for B rows: the rows' state, the cb0 `tokens` just drawn
    (long [B]) and whether each row's text was all fed before this token (bool [B]).

    Returns the new (history, quiet_history, silent, after), the verdict (long [B]: NONE,
    SILENCE, REPETITION or TAIL) and the frames to trim (long [B]). Pure tensor operations:
    the settings are fixed per model, so the operations run are the same every frame."""
    quiet = quiet_table[tokens]
    history = torch.cat((history[:, 1:], tokens.unsqueeze(1)), dim=1)
    quiet_history = torch.cat((quiet_history[:, 1:], quiet.unsqueeze(1)), dim=1)
    counted = text_done.long()
    after = after + counted
    silent = torch.where(text_done & quiet, silent + 1, torch.zeros_like(silent))
    verdict = torch.zeros_like(tokens)
    trim = torch.zeros_like(tokens)

    tail_hit = text_done & (tail_max >= 0) & (after > tail_max)
    verdict = torch.where(tail_hit, torch.full_like(verdict, TAIL), verdict)

    if loop_frames > 0 and loop_index is not None:
        window = history[:, -loop_frames:]  # [B, W]
        earlier = history[:, loop_index]  # [B, P, W]: the frame one period p earlier
        loud = ~quiet_history[:, -loop_frames:] & (window >= 0)
        matches = ((window.unsqueeze(1) == earlier) & loud.unsqueeze(1)).sum(dim=-1)  # [B, P]
        best, period = matches.max(dim=-1)
        loop_hit = text_done & (after >= loop_frames) & (best >= math.ceil(LOOP_MATCH * loop_frames))
        verdict = torch.where(loop_hit, torch.full_like(verdict, REPETITION), verdict)
        trim = torch.where(loop_hit, loop_frames - (period + 1), trim)

    if silence_frames > 0:
        silence_hit = silent >= silence_frames
        verdict = torch.where(silence_hit, torch.full_like(verdict, SILENCE), verdict)
        trim = torch.where(silence_hit, silent, trim)
    return history, quiet_history, silent, after, verdict, trim


class GuardBank:
    """The guards' state for every KV slot of one batch, on the model's device."""

    def __init__(self, limits: GuardLimits, slots: int, quiet_table: torch.Tensor) -> None:
        self.limits = limits
        device = quiet_table.device
        self.quiet_table = quiet_table
        length = limits.loop_frames + MAX_PERIOD if limits.loop_frames > 0 else 1
        self.history = torch.full((slots, length), -1, dtype=torch.long, device=device)
        self.quiet = torch.zeros((slots, length), dtype=torch.bool, device=device)
        self.silent = torch.zeros(slots, dtype=torch.long, device=device)
        self.after = torch.zeros(slots, dtype=torch.long, device=device)
        self.tail_max = torch.full((slots,), -1, dtype=torch.long, device=device)
        self.loop_index: torch.Tensor | None = None
        if limits.loop_frames > 0:
            # earlier[p - 1, j] = the history position one period p before window position j.
            periods = torch.arange(1, MAX_PERIOD + 1, device=device).unsqueeze(1)
            positions = torch.arange(length - limits.loop_frames, length, device=device).unsqueeze(0)
            self.loop_index = positions - periods

    @property
    def active(self) -> bool:
        limits = self.limits
        return limits.silence_frames > 0 or limits.loop_frames > 0 or limits.tail_ratio > 0

    def reset(self, slot: int, text_tokens: int) -> None:
        """A new segment in `slot`: nothing seen yet."""
        self.history[slot].fill_(-1)  # fill_: a kernel argument, never a blocking copy
        self.quiet[slot].fill_(False)
        self.silent[slot].fill_(0)
        self.after[slot].fill_(0)
        self.tail_max[slot].fill_(self.limits.tail_limit(text_tokens))

    def move(self, source: int, target: int) -> None:
        for state in (self.history, self.quiet, self.silent, self.after, self.tail_max):
            state[target] = state[source]

    def frame(
        self, bucket: int, tokens: torch.Tensor, text_done: torch.Tensor, active: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The guards inside the frame, over the batch's first `bucket` rows (row i is KV slot
        i): the verdict and the frames to trim, long [bucket]. Only `active` rows' state
        advances (padded, paused and finished rows stay as they were); slices and `where`
        only, no index built from host data, so it captures into a CUDA graph."""
        history, quiet, silent, after, verdict, trim = guard_frame(
            self.history[:bucket],
            self.quiet[:bucket],
            self.silent[:bucket],
            self.after[:bucket],
            self.tail_max[:bucket],
            tokens,
            text_done & active,
            self.quiet_table,
            self.loop_index,
            self.limits.silence_frames,
            self.limits.loop_frames,
        )
        rows = active.unsqueeze(1)
        self.history[:bucket].copy_(torch.where(rows, history, self.history[:bucket]))
        self.quiet[:bucket].copy_(torch.where(rows, quiet, self.quiet[:bucket]))
        self.silent[:bucket].copy_(torch.where(active, silent, self.silent[:bucket]))
        self.after[:bucket].copy_(torch.where(active, after, self.after[:bucket]))
        none = torch.zeros_like(verdict)
        return torch.where(active, verdict, none), torch.where(active, trim, none)

    def observe(
        self, slots: list[int], tokens: torch.Tensor, text_done: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the guards on the rows in `slots` for their new cb0 `tokens`; returns the
        verdict and the frames to trim, long [B] each, without reading them back."""
        index = torch.tensor(slots, dtype=torch.long, device=tokens.device)
        history, quiet, silent, after, verdict, trim = guard_frame(
            self.history[index],
            self.quiet[index],
            self.silent[index],
            self.after[index],
            self.tail_max[index],
            tokens,
            text_done,
            self.quiet_table,
            self.loop_index,
            self.limits.silence_frames,
            self.limits.loop_frames,
        )
        self.history[index] = history
        self.quiet[index] = quiet
        self.silent[index] = silent
        self.after[index] = after
        return verdict, trim
