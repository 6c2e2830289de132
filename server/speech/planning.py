"""Planning: a validated request becomes a `SpeechPlan` (the engine's job and what the
response needs), with every field checked before any audio is produced. The options every
front door shares, the seed, the cap on frames and the first chunk's size are settled here;
running the plan is synthesis.py's work, logging it request_log.py's."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

from server.audio.formats import FormatSpec, UnknownFormatError, get_format
from server.engine.jobs import SAMPLE_RATE, ChunkPlan, SamplingParams, SynthesisJob
from server.engine.sequence import draw_seed as draw_seed
from server.engine.sequence import segment_seed as segment_seed
from server.errors import invalid_request
from server.speech.catalog import ModelCatalog
from server.speech.described_voices import resolve_design
from server.speech.requests import OmniFields, SamplingFields, SpeechRequest, VoiceFields
from server.speech.voice_resolution import RequestVoices, ResolvedVoice
from server.text import UnsupportedLanguageError, detect_language, normalize_language
from server.text.pieces import split_pieces


@dataclass(frozen=True)
class SpeechPlan:
    """Everything about a request that was validated before any audio is produced."""

    job: SynthesisJob
    format: FormatSpec
    speed: float
    endpoint: str
    voice_label: str
    chars: int
    instructions_given: bool
    # The rate the client gets (resampled at the front door from the model's 24 kHz) and
    # one linear gain for the whole request, applied to every chunk alike.
    sample_rate: int = SAMPLE_RATE
    gain: float = 1.0
    seed_sent: bool = False  # the client chose the seed (job.seed is always set: drawn when not)


@dataclass(frozen=True)
class SpeechOptions:
    """The request fields every speech endpoint shares, whatever body they came in."""

    input: str
    response_format: str
    speed: float = 1.0
    language: str | None = None
    instructions: str | None = None
    seed: int | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    max_new_tokens: int | None = None
    sample_rate: int = SAMPLE_RATE
    gain: float = 1.0
    # Frames before a stream's first chunk (vLLM-Omni's initial_codec_chunk_frames);
    # None keeps STREAM_FIRST_CHUNK_FRAMES.
    first_chunk_frames: int | None = None


def sampling_of(request: SamplingFields | SpokenFields) -> SamplingParams:
    return SamplingParams(
        temperature=request.temperature,
        top_p=request.top_p,
        top_k=request.top_k,
        repetition_penalty=request.repetition_penalty,
    )


class SpokenFields(Protocol):
    """What a request says about its speech besides the text and the voice: the JSON body's
    fields (VoiceFields), or a vLLM-Omni session.config's (sampling and output fields alike)."""

    @property
    def response_format(self) -> str: ...
    @property
    def speed(self) -> float: ...
    @property
    def language(self) -> str | None: ...
    @property
    def instructions(self) -> str | None: ...
    @property
    def seed(self) -> int | None: ...
    @property
    def temperature(self) -> float | None: ...
    @property
    def top_p(self) -> float | None: ...
    @property
    def top_k(self) -> int | None: ...
    @property
    def repetition_penalty(self) -> float | None: ...
    @property
    def max_new_tokens(self) -> int | None: ...
    @property
    def sample_rate(self) -> int: ...
    @property
    def gain(self) -> float: ...


def options_of(request: SpokenFields, text: str) -> SpeechOptions:
    """The shared options of a speech request, for `text`: the same mapping on every door."""
    return SpeechOptions(
        input=text,
        response_format=request.response_format,
        speed=request.speed,
        language=request.language,
        instructions=request.instructions,
        seed=request.seed,
        sampling=sampling_of(request),
        max_new_tokens=request.max_new_tokens,
        sample_rate=request.sample_rate,
        gain=request.gain,
        first_chunk_frames=request.initial_codec_chunk_frames if isinstance(request, OmniFields) else None,
    )


def resolve_format(name: str) -> FormatSpec:
    try:
        return get_format(name)
    except UnknownFormatError as exc:
        raise invalid_request(str(exc), param="response_format", code="unsupported_format") from exc


def resolve_language(requested: str | None, text: str) -> str:
    """The requested language, or one detected from the script when absent (`Auto` when the
    script does not tell, which lets the model decide)."""
    if requested is None or not requested.strip():
        return detect_language(text)
    try:
        return normalize_language(requested)
    except UnsupportedLanguageError as exc:
        raise invalid_request(str(exc), param="language", code="unsupported_language") from exc


class SpeechPlanner:
    """Checks a request against what this server serves and plans it: `voices` is the chain of
    voice resolvers the app composed, `token_cap` the server's MAX_NEW_TOKENS, `chunks` how a
    stream is cut."""

    def __init__(
        self, models: ModelCatalog, voices: RequestVoices, token_cap: int, chunks: ChunkPlan | None = None
    ) -> None:
        self.models = models
        self.voices = voices
        self.token_cap = token_cap
        self.chunk_plan = chunks or ChunkPlan()

    async def plan_request(self, request: SpeechRequest, endpoint: str, *, per_sentence: bool = False) -> SpeechPlan:
        """Validate an OpenAI-shaped speech request and turn it into a plan."""
        voice, fmt = await self.prepare(request)
        return self.plan(options_of(request, request.input), voice, fmt, endpoint, per_sentence=per_sentence)

    async def prepare(self, request: VoiceFields) -> tuple[ResolvedVoice, FormatSpec]:
        """Check a request's model and format and resolve its voice (400/404 when unknown).
        A request naming the design model speaks the voice its instructions describe: those
        rules come first (the design model's alias is no unknown model), and the voice chain,
        which may load a saved voice's prompt, is asked last."""
        designed = resolve_design(request, self.models.design_ids)
        if request.model is not None and designed is None:
            self.models.require(request.model)
        fmt = resolve_format(request.response_format)
        if designed is not None:
            return designed, fmt
        return await self.voices.for_request(request), fmt

    def token_cap_for(self, requested: int | None) -> int:
        """The request's cap on frames per generated piece: MAX_NEW_TOKENS unless it asks for less."""
        if requested is None:
            return self.token_cap
        if requested > self.token_cap:
            raise invalid_request(
                f"max_new_tokens must be at most {self.token_cap} (the server's MAX_NEW_TOKENS)",
                param="max_new_tokens",
            )
        return requested

    def plan(
        self,
        options: SpeechOptions,
        voice: ResolvedVoice,
        fmt: FormatSpec,
        endpoint: str,
        *,
        per_sentence: bool = False,
        interactive: bool = False,
    ) -> SpeechPlan:
        """A plan for any voice; every field is validated here, before audio is produced.
        `per_sentence` makes each sentence its own segment (the sentence stream's contract);
        a speed change does too, since time-stretching needs whole phrases."""
        seed = options.seed if options.seed is not None else draw_seed()  # any output can be reproduced
        job = SynthesisJob(
            slot=voice.slot,
            segments=split_pieces(options.input, per_sentence=per_sentence or options.speed != 1.0),
            language=resolve_language(options.language, options.input),
            token_cap=self.token_cap_for(options.max_new_tokens),
            speaker=voice.speaker,
            clone=voice.clone,
            instruct=options.instructions or None,
            seed=seed,
            sampling=options.sampling,
            chunks=self._chunk_plan(options.first_chunk_frames),
            interactive=interactive,
        )
        return SpeechPlan(
            job=job,
            format=fmt,
            speed=options.speed,
            endpoint=endpoint,
            voice_label=voice.label,
            chars=len(options.input),
            instructions_given=bool(options.instructions),
            sample_rate=options.sample_rate,
            gain=options.gain,
            seed_sent=options.seed is not None,
        )

    def _chunk_plan(self, first_frames: int | None) -> ChunkPlan:
        if first_frames is None:
            return self.chunk_plan
        return replace(self.chunk_plan, first_frames=first_frames)
