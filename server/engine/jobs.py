"""Typed, immutable messages that cross the boundary between the web side and the
inference thread. Nothing here holds a request object or a model tensor."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

import numpy as np

# One slot per kind of model: preset speakers, cloning, voices described in words.
SlotName = Literal["custom_voice", "base", "voice_design"]

# The 12 Hz codec: 24 kHz audio, 1920 samples per codec frame.
SAMPLE_RATE = 24_000
SAMPLES_PER_FRAME = 1920


@dataclass(frozen=True)
class CloneVoice:
    """A cloned voice for the base slot: either a prompt computed earlier by the model
    (cached, opaque to everything but the adapter) or the reference to compute it from."""

    prompt: Any = None
    reference: tuple[np.ndarray, int] | None = None
    ref_text: str | None = None


@dataclass(frozen=True)
class SamplingParams:
    """A request's overrides of the checkpoint's sampling defaults (its generation_config.json);
    None keeps the default. `temperature`, `top_k` and `top_p` apply to both stages (codebook 0
    and the code predictor's codebooks 1-15); a temperature of 0 means greedy decoding.
    `repetition_penalty` applies to codebook 0 only, as in the package."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None

    def describe(self) -> dict[str, float | int]:
        """The fields that were set, for logs."""
        return {name: value for name, value in vars(self).items() if value is not None}


@dataclass(frozen=True)
class ChunkPlan:
    """When a stream's audio is handed over: the first chunk after `first_frames` codec frames
    (a listener hears something at once), each later one twice as long up to `frames` (fewer,
    larger codec decodes once playback has started). A chunk also ends with its segment."""

    first_frames: int = 2
    frames: int = 24


@dataclass(frozen=True)
class SynthesisJob:
    """One request's synthesis: its text already split into segments, each generated in one
    go (a sentence, or a few sentences up to a size that keeps prosody and bounds memory).

    `token_cap` bounds max_new_tokens for every segment (the server's MAX_NEW_TOKENS, or a
    request's lower `max_new_tokens`); the engine sizes each segment's budget to its text
    below that cap. `seed`, when given, makes generation repeatable: segment i draws from its
    own seed, seed + i (its draws keyed by that seed, the frame and the codebook, never by
    what else runs), so the same request yields the same audio whether it
    is streamed or collected, and whatever else shares its batch. `interactive` jobs (a live
    conversation) are admitted before bulk ones that waited longer; `background` ones (a
    long-audio job's segments) only take a row no other work is waiting for.
    """

    slot: SlotName
    segments: tuple[str, ...]
    language: str
    token_cap: int
    speaker: str | None = None
    instruct: str | None = None
    clone: CloneVoice | None = None
    seed: int | None = None
    sampling: SamplingParams = SamplingParams()
    chunks: ChunkPlan = ChunkPlan()
    interactive: bool = False
    background: bool = False


class FinishReason(StrEnum):
    """How a segment (or a whole request) ended. Every front door reports these values as
    they are (the strings), next to the fields its protocol already has.

    - STOP: the model emitted end-of-speech;
    - LENGTH: its frame budget ran out, or the tail after its text outgrew the tail guard;
    - SILENCE: the near-silence guard ended a quiet tail after the text;
    - REPETITION: the loop guard ended a codebook-0 loop after the text;
    - CANCELLED: the client left (or the request was stopped) before the end;
    - TIMEOUT: REQUEST_TIMEOUT ran out;
    - ERROR: synthesis failed.
    Only STOP is a clean ending: the output cache keeps nothing else."""

    STOP = "stop"
    LENGTH = "length"
    SILENCE = "silence"
    REPETITION = "repetition"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    ERROR = "error"


def request_finish_reason(segments: list[FinishReason]) -> FinishReason:
    """A request's reason from its segments' reasons: the first that is not STOP (a capped or
    guarded segment marks the whole response), else STOP."""
    return next((reason for reason in segments if reason is not FinishReason.STOP), FinishReason.STOP)


@dataclass(frozen=True)
class SegmentStats:
    """How one segment went, reported with its last chunk."""

    index: int
    input_tokens: int
    output_frames: int
    max_new_tokens: int
    queued_ms: float  # waiting for a place in the batch (and the model to load)
    load_ms: float  # loading the model for this segment (0 when it was loaded)
    generate_ms: float  # from the start of its prefill to its last frame
    batch_max: int  # the most sequences generated together while it ran
    finish_reason: FinishReason = FinishReason.STOP
    trimmed_frames: int = 0  # frames of a guarded tail left out of the audio


@dataclass(frozen=True)
class AudioChunk:
    """A piece of a job's audio as the inference thread hands it over."""

    pcm: np.ndarray  # float32, mono, SAMPLE_RATE; an owned copy, never a view of model memory
    segment: int
    frames: int  # codec frames in this chunk
    segment_end: bool  # the last chunk of its segment
    stats: SegmentStats | None = None  # with the last chunk of a segment
    # With a segment's last chunk: samples at the end of the audio already handed over (in
    # earlier chunks) that belong to a guarded tail; a consumer that still holds them cuts them.
    trim_samples: int = 0
