"""Planning: a validated request becomes a `SpeechPlan` (the engine's job and what the
response needs), with every field checked before any audio is produced. The options every
front door shares, the seed, the cap on frames and the first chunk's size are settled here;
running the plan is synthesis.py's work, logging it request_log.py's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from server.audio.formats import FormatSpec, UnknownFormatError, get_format
from server.engine.jobs import SAMPLE_RATE, ChunkPlan, SamplingParams, SynthesisJob
from server.engine.sequence import draw_seed as draw_seed
from server.engine.sequence import segment_seed as segment_seed
from server.errors import invalid_request
from server.speech.catalog import ModelCatalog
from server.speech.described_voices import resolve_design
from server.speech.pronunciation_file import Pronunciations, entry_of
from server.speech.requests import MAX_SPEED, MIN_SPEED, OmniFields, SamplingFields, SpeechRequest, VoiceFields
from server.speech.scripted import Layout, PlanPart, lay_out, pronounce, read_input
from server.speech.scripted import resolve_language as resolve_language
from server.speech.voice_resolution import RequestVoices, ResolvedVoice
from server.text import UnsupportedLanguageError
from server.text.pieces import split_pieces
from server.text.pronunciations import Pronunciation
from server.text.script import Script, Spoken, is_ssml


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
    # A script with pauses, SSML or pronunciations (scripted.py): the parts after `job`, each
    # its own job with its speed and gain, and the segments as laid out. Empty for plain text.
    rest: tuple[PlanPart, ...] = ()
    layout: Layout | None = None

    @property
    def parts(self) -> tuple[PlanPart, ...]:
        """Every job of the plan, in order: `job` first (with the plan's speed and gain)."""
        return (PlanPart(self.job, self.speed, self.gain, 0), *self.rest)

    @property
    def segments(self) -> tuple[str, ...]:
        """The text of every segment, numbered across the parts."""
        return tuple(segment for part in self.parts for segment in part.job.segments)

    def part_of(self, segment: int) -> PlanPart:
        return next(part for part in reversed(self.parts) if part.first <= segment)

    def pause_before(self, segment: int) -> int:
        """Samples of silence (at 24 kHz) before a segment; the segment count gives the trailing one."""
        if self.layout is None:
            return 0
        return self.layout.pauses[segment]


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
    # The request's own pronunciations (over the server's file).
    pronunciations: tuple[Pronunciation, ...] = ()


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
        pronunciations=pronunciations_of(request),
    )


def pronunciations_of(request: SpokenFields) -> tuple[Pronunciation, ...]:
    """A request's `pronunciations` (a 400 naming the entry whose language is unknown)."""
    entries = getattr(request, "pronunciations", None) or ()
    out: list[Pronunciation] = []
    for index, entry in enumerate(entries):
        try:
            out.append(entry_of(entry))
        except UnsupportedLanguageError as exc:
            raise invalid_request(str(exc), param=f"pronunciations[{index}].language") from exc
    return tuple(out)


def resolve_format(name: str) -> FormatSpec:
    try:
        return get_format(name)
    except UnknownFormatError as exc:
        raise invalid_request(str(exc), param="response_format", code="unsupported_format") from exc


class SpeechPlanner:
    """Checks a request against what this server serves and plans it: `voices` is the chain of
    voice resolvers the app composed, `token_cap` the server's MAX_NEW_TOKENS, `chunks` how a
    stream is cut."""

    def __init__(
        self,
        models: ModelCatalog,
        voices: RequestVoices,
        token_cap: int,
        chunks: ChunkPlan | None = None,
        pronunciations: Pronunciations | None = None,
    ) -> None:
        self.models = models
        self.voices = voices
        self.token_cap = token_cap
        self.chunk_plan = chunks or ChunkPlan()
        self.pronunciations = pronunciations or Pronunciations()

    async def plan_request(self, request: SpeechRequest, endpoint: str, *, per_sentence: bool = False) -> SpeechPlan:
        """Validate an OpenAI-shaped speech request and turn it into a plan."""
        voice, fmt = await self.prepare(request)
        voices = await self.script_voices(request.input)
        return self.plan(
            options_of(request, request.input), voice, fmt, endpoint, per_sentence=per_sentence, voices=voices
        )

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
        voices: Mapping[str, ResolvedVoice] | None = None,
    ) -> SpeechPlan:
        """A plan for any voice; every field is validated here, before audio is produced.
        `per_sentence` makes each sentence its own segment (the sentence stream's contract);
        a speed change does too, since time-stretching needs whole phrases. `voices` are the
        voices an SSML document names (script_voices resolves them)."""
        seed = options.seed if options.seed is not None else draw_seed()  # any output can be reproduced
        script = read_input(options.input, options.language)
        script = pronounce(script, self.pronunciations.lexicon(options.pronunciations), options.language)
        if not script.plain:
            return self._scripted(script, options, voice, fmt, endpoint, seed, per_sentence, interactive, voices)
        segments = split_pieces(options.input, per_sentence=per_sentence or options.speed != 1.0)
        language = resolve_language(options.language, options.input)
        job = self._job(options, voice, segments, language, seed, interactive)
        return plan_of(job, options, fmt, endpoint, voice, speed=options.speed, gain=options.gain)

    def _job(
        self,
        options: SpeechOptions,
        voice: ResolvedVoice,
        segments: tuple[str, ...],
        language: str,
        seed: int,
        interactive: bool,
    ) -> SynthesisJob:
        """The engine's job for `segments` in `voice`, with the request's shared settings."""
        return SynthesisJob(
            slot=voice.slot,
            segments=segments,
            language=language,
            token_cap=self.token_cap_for(options.max_new_tokens),
            speaker=voice.speaker,
            clone=voice.clone,
            instruct=options.instructions or None,
            seed=seed,
            sampling=options.sampling,
            chunks=self._chunk_plan(options.first_chunk_frames),
            interactive=interactive,
        )

    async def script_voices(self, text: str) -> dict[str, ResolvedVoice]:
        """The voices an SSML document's `voice` elements name, resolved like a request's."""
        if not is_ssml(text):
            return {}
        names = {item.voicing.voice for item in read_input(text).items if isinstance(item, Spoken)}
        resolved: dict[str, ResolvedVoice] = {}
        for name in sorted(n for n in names if n is not None):
            resolved[name] = await self.voices.for_request(VoiceFields.model_validate({"voice": name}))
        return resolved

    def _scripted(
        self,
        script: Script,
        options: SpeechOptions,
        voice: ResolvedVoice,
        fmt: FormatSpec,
        endpoint: str,
        seed: int,
        per_sentence: bool,
        interactive: bool,
        voices: Mapping[str, ResolvedVoice] | None,
    ) -> SpeechPlan:
        """A plan of several parts: one job per run of segments with one voicing."""
        layout = lay_out(script, per_sentence=per_sentence or options.speed != 1.0)
        # Pauses alone (a text stream's sentence may be one) are silence: a part with no
        # segments, which never reaches the engine.
        parts: list[PlanPart] = [] if layout.segments else [self._silent_part(voice, options)]
        for first, segments in layout.groups():
            voicing = segments[0].voicing
            speaker = voice if voicing.voice is None else (voices or {}).get(voicing.voice)
            if speaker is None:
                raise invalid_request(f"voice elements are not read on {endpoint}", param="input")
            speed = options.speed * voicing.rate
            if not MIN_SPEED <= speed <= MAX_SPEED:
                raise invalid_request(f"prosody rate gives a speed of {speed:g}; 0.25 to 4 is possible", param="input")
            texts = tuple(segment.text for segment in segments)
            language = resolve_language(voicing.language or options.language, " ".join(texts))
            job = self._job(options, speaker, texts, language, segment_seed(seed, first), interactive)
            label = speaker.speaker if speaker.speaker is not None else speaker.label
            parts.append(PlanPart(job, speed, options.gain * voicing.gain, first, label))
        head = parts[0]
        job = replace(head.job, seed=seed)
        return plan_of(
            job, options, fmt, endpoint, voice, speed=head.speed, gain=head.gain, rest=tuple(parts[1:]), layout=layout
        )

    def _silent_part(self, voice: ResolvedVoice, options: SpeechOptions) -> PlanPart:
        job = SynthesisJob(
            slot=voice.slot,
            segments=(),
            language=resolve_language(options.language, ""),
            token_cap=self.token_cap_for(options.max_new_tokens),
            speaker=voice.speaker,
            clone=voice.clone,
        )
        return PlanPart(job, options.speed, options.gain, 0, voice.label)

    def _chunk_plan(self, first_frames: int | None) -> ChunkPlan:
        if first_frames is None:
            return self.chunk_plan
        return replace(self.chunk_plan, first_frames=first_frames)


def plan_of(
    job: SynthesisJob,
    options: SpeechOptions,
    fmt: FormatSpec,
    endpoint: str,
    voice: ResolvedVoice,
    *,
    speed: float,
    gain: float,
    rest: tuple[PlanPart, ...] = (),
    layout: Layout | None = None,
) -> SpeechPlan:
    """The plan of a request whose first (or only) part is `job`."""
    return SpeechPlan(
        job=job,
        format=fmt,
        speed=speed,
        endpoint=endpoint,
        voice_label=voice.label,
        chars=len(options.input),
        instructions_given=bool(options.instructions),
        sample_rate=options.sample_rate,
        gain=gain,
        seed_sent=options.seed is not None,
        rest=rest,
        layout=layout,
    )
