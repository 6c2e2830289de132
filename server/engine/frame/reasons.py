"""Why a row's segment ended after a frame, as the frame writes it into its output: shared by
the talker's step, the runaway guards (whose verdicts are these values) and the batch, which
turns them into the request's finish reason."""

from __future__ import annotations

from enum import IntEnum


class EndReason(IntEnum):
    GOES_ON = 0
    END_OF_SPEECH = 1
    TOKEN_BUDGET = 2
    # The runaway guards (server/engine/frame/guards.py): a quiet tail, a codebook-0 loop, a
    # tail longer than the text explains.
    SILENCE_GUARD = 3
    REPETITION_GUARD = 4
    TAIL_GUARD = 5


GUARD_REASONS = (EndReason.SILENCE_GUARD, EndReason.REPETITION_GUARD, EndReason.TAIL_GUARD)
