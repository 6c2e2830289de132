"""Request and response models: the OpenAI speech contract in one file.

Unknown extra fields are ignored, as OpenAI-compatible servers commonly do; the
extensions this server understands (`language`, `seed`, `instruct`, the sampling fields)
are declared here. JSON's types are held to (strict mode), on every door that takes these
models: "yes" is not true and "5" is not 5 (a whole number may be given for a decimal one).
Multipart form fields are text by nature and are read from text (server/http/routes/uploads.py).
"""

from __future__ import annotations

from collections.abc import Container
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from server.audio.dsp import SAMPLE_RATE
from server.audio.resample import ALLOWED_SAMPLE_RATES, UnsupportedSampleRateError, check_sample_rate
from server.errors import invalid_request

MAX_INPUT_CHARS = 4096
MAX_VOICE_CHARS = 128
MIN_SPEED = 0.25
MAX_SPEED = 4.0
# Bounds of the sampling extensions; the model's defaults come from its generation_config.json.
MAX_TEMPERATURE = 2.0
MAX_TOP_K = 4096
MAX_REPETITION_PENALTY = 2.0


def json_object(raw: str | bytes) -> dict[str, Any]:
    """One client message that must be one JSON object (a WebSocket's text frame); raises
    APIError (400) saying what is wrong."""
    try:
        data: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid_request(f"a message must be one JSON object: {exc}") from exc
    if not isinstance(data, dict):
        raise invalid_request("a message must be one JSON object")
    return data


class VoiceRef(BaseModel):
    """OpenAI's object form of a voice: `{"id": "..."}`."""

    model_config = ConfigDict(extra="ignore", strict=True)
    id: str = Field(min_length=1, max_length=MAX_VOICE_CHARS)


VoiceName = Annotated[str, Field(min_length=1, max_length=MAX_VOICE_CHARS)]


class SamplingFields(BaseModel):
    """Sampling extensions (vLLM and the earlier Qwen3-TTS server accept them); absent fields
    keep the checkpoint's defaults. temperature 0 is greedy decoding; top_k 0 turns top-k off;
    max_new_tokens caps the codec frames of each generated piece of the input, at most the
    server's MAX_NEW_TOKENS. Shared by the JSON body and the clone endpoint's form fields."""

    model_config = ConfigDict(extra="ignore", strict=True)

    temperature: float | None = Field(default=None, ge=0, le=MAX_TEMPERATURE, allow_inf_nan=False)
    top_p: float | None = Field(default=None, gt=0, le=1, allow_inf_nan=False)
    top_k: int | None = Field(default=None, ge=0, le=MAX_TOP_K)
    repetition_penalty: float | None = Field(default=None, gt=0, le=MAX_REPETITION_PENALTY, allow_inf_nan=False)
    max_new_tokens: int | None = Field(default=None, ge=2)


# One constant gain per request: enough to lift the model's level towards music or to
# tame it, without turning noise floors into hiss.
MIN_GAIN_DB = -40.0
MAX_GAIN_DB = 20.0
MAX_VOLUME_MULTIPLIER = 10.0

# Fields peers send that would change the audio but that this server does not honour: a
# request that sets one is refused (400 naming it), never answered as if it had not been
# said. Each maps to what the client can do instead. A value that asks for what the server
# does anyway (normalize false) passes.
REFUSED_FIELDS: dict[str, str] = {
    "volume": "its scale differs between servers (0-100, 0-2, 0-1); use gain_db (decibels) or volume_multiplier",
    "normalize": "loudness normalisation is not offered; use gain_db for one gain over the whole response",
    "stream_mode": (
        "it is read on POST /v1/audio/speech/stream and /v1/audio/speech/stream/pcm; "
        "here streaming is chosen by stream (true/false) and stream_format (audio/sse)"
    ),
    "bitrate": "the encoders use fixed bitrates",
    "channels": "audio is mono",
    "pitch": "pitch shifting is not offered",
    "emotion": "describe the delivery in instructions instead",
    "rate": "use speed (0.25 to 4.0)",
    "format": "use response_format",
    "lang_code": "use language (a name such as English, or an ISO code such as en)",
    "return_timestamps": (
        "word timestamps come from POST /v1/audio/speech/captioned, or from timestamps: true with stream_format sse"
    ),
    "return_download_link": "responses carry the audio itself",
    "normalization_options": "text normalisation is not configurable",
}
# (Form fields arrive as strings.)
_PASSING_VALUES: dict[str, tuple[object, ...]] = {
    "normalize": (False, None, "false", "0"),
    "channels": (1, None, "1"),
    "return_timestamps": (False, None, "false", "0"),
    "return_download_link": (False, None, "false", "0"),
}


def refuse_unhonoured_fields(data: Any, honoured: Container[str] = ()) -> None:
    """400 naming the first field of REFUSED_FIELDS a request sets to a value that matters
    (but for those the request's model declares: `honoured`)."""
    if not isinstance(data, dict):
        return
    for name, instead in REFUSED_FIELDS.items():
        if name in honoured:
            continue
        if name in data and data[name] not in _PASSING_VALUES.get(name, (None,)):
            raise invalid_request(f"{name} is not supported: {instead}", param=name, code="unsupported_field")


class OutputFields(BaseModel):
    """How the audio comes out: its sample rate (resampled from the model's 24 kHz with a
    streaming resampler) and its level (one constant gain for the whole request)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    sample_rate: int = Field(default=SAMPLE_RATE, json_schema_extra={"enum": list(ALLOWED_SAMPLE_RATES)})
    gain_db: float | None = Field(default=None, ge=MIN_GAIN_DB, le=MAX_GAIN_DB, allow_inf_nan=False)
    # Kokoro-FastAPI's name for a linear gain.
    volume_multiplier: float | None = Field(default=None, gt=0, le=MAX_VOLUME_MULTIPLIER, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _refuse_unhonoured(cls, data: Any) -> Any:
        refuse_unhonoured_fields(data, cls.model_fields)
        return data

    @field_validator("sample_rate")
    @classmethod
    def _allowed_rate(cls, value: int) -> int:
        try:
            return check_sample_rate(value)
        except UnsupportedSampleRateError as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("volume_multiplier")
    @classmethod
    def _one_gain(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and info.data.get("gain_db") is not None:
            raise ValueError("give gain_db or volume_multiplier, not both")
        return value

    @property
    def gain(self) -> float:
        """The linear gain the request asks for (1.0: unchanged)."""
        if self.gain_db is not None:
            return float(10 ** (self.gain_db / 20))
        return self.volume_multiplier if self.volume_multiplier is not None else 1.0


MAX_PRONUNCIATIONS = 1000


class PronunciationEntry(BaseModel):
    """A pronunciation: `text` as written is read as `alias` (docs/text-control.md). Unknown
    keys are refused (a `phoneme` would otherwise be silently ignored)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    text: str = Field(min_length=1, max_length=256)
    alias: str = Field(min_length=1, max_length=512)
    language: str | None = Field(default=None, max_length=32)
    case_sensitive: bool = False
    whole_word: bool = True


class VoiceFields(SamplingFields, OutputFields):
    """What every JSON speech request says besides its text, over HTTP and on the WebSocket."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, strict=True)

    # Optional, as with the earlier server, vLLM and Kokoro: absent means the preset-voice model.
    model: str | None = Field(default=None, min_length=1, max_length=256)
    voice: VoiceName | VoiceRef = Field(description="A voice name (preset or saved), or the object form")
    instructions: str | None = Field(
        default=None, max_length=MAX_INPUT_CHARS, validation_alias=AliasChoices("instructions", "instruct")
    )
    response_format: str = Field(default="mp3", max_length=32)
    speed: float = Field(default=1.0, ge=MIN_SPEED, le=MAX_SPEED, allow_inf_nan=False)
    # Extensions beyond OpenAI's schema.
    language: str | None = Field(default=None, max_length=32)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    # Read on top of the server's PRONUNCIATIONS_FILE; a request's entry wins a tie.
    pronunciations: list[PronunciationEntry] | None = Field(default=None, max_length=MAX_PRONUNCIATIONS)

    @field_validator("voice", mode="before")
    @classmethod
    def _one_voice_form(cls, value: Any) -> Any:
        """One clear message for either form, instead of one per union member."""
        if isinstance(value, str):
            if not 1 <= len(value) <= MAX_VOICE_CHARS:
                raise ValueError(f"a voice name has 1 to {MAX_VOICE_CHARS} characters")
            return value
        if isinstance(value, dict):
            try:
                return VoiceRef.model_validate(value)
            except ValidationError:
                raise ValueError(f'the object form is {{"id": "<1 to {MAX_VOICE_CHARS} characters>"}}') from None
        raise ValueError('voice must be a string or an object {"id": "..."}')

    @field_validator("response_format")
    @classmethod
    def _lower_format(cls, value: str) -> str:
        return value.strip().lower()

    @property
    def voice_name(self) -> str:
        return self.voice.id if isinstance(self.voice, VoiceRef) else self.voice


class SpokenText(BaseModel):
    """The text to speak, as `input`."""

    model_config = ConfigDict(strict=True)

    input: str = Field(min_length=1, max_length=MAX_INPUT_CHARS)

    @field_validator("input")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("input must contain text to speak")
        return value


# vLLM-Omni's reference transcripts and first chunks: bounds of its speech fields here.
MAX_REF_TEXT_CHARS = 2048
MAX_FIRST_CHUNK_FRAMES = 100
# A request whose voice is its inline `ref_audio` may leave `voice` out; it is logged as this.
INLINE_VOICE = "ref_audio"


class OmniFields(BaseModel):
    """vLLM-Omni's speech extensions (its HTTP body and its speech socket's session.config):
    which Qwen3-TTS task speaks, an inline reference for cloning, the size of the first
    streamed chunk. How they map onto this server's voices is server.speech.omni's work."""

    model_config = ConfigDict(extra="ignore", strict=True)

    task_type: Literal["CustomVoice", "Base", "VoiceDesign"] | None = None
    # A data URL (or bare base64) of the reference recording; its decoded size is bounded
    # by MAX_UPLOAD_BYTES, the string by the body limit before anything parses it.
    ref_audio: str | None = Field(default=None, min_length=1)
    ref_text: str | None = Field(default=None, max_length=MAX_REF_TEXT_CHARS)
    x_vector_only_mode: bool | None = None
    initial_codec_chunk_frames: int | None = Field(default=None, ge=1, le=MAX_FIRST_CHUNK_FRAMES)

    def uses_omni_voice(self) -> bool:
        """Whether the voice is chosen by these fields rather than by `voice` alone."""
        return self.task_type is not None or self.ref_audio is not None

    @model_validator(mode="before")
    @classmethod
    def _inline_voice(cls, data: Any) -> Any:
        # With ref_audio the reference is the voice: vLLM-Omni clients may send no `voice`.
        if isinstance(data, dict) and data.get("ref_audio") and data.get("voice") is None:
            return {**data, "voice": INLINE_VOICE}
        return data


class SpeechRequest(VoiceFields, SpokenText, OmniFields):
    """OpenAI's speech body, with this server's extensions and vLLM-Omni's."""

    stream_format: Literal["audio", "sse"] = "audio"
    # False answers one whole file with exact headers and length instead of a chunked stream.
    stream: bool = True
    # Word timestamps (ALIGNER_MODEL_ID): a `speech.audio.timestamps` event after each
    # segment with stream_format sse, a `words` event on the sentence stream.
    timestamps: bool = False


StreamMode = Literal["sentence", "token"]


class StreamedSpeechRequest(SpeechRequest):
    """The speech body of the routes where the earlier server read a per-request
    `stream_mode` (the sentence stream and the raw PCM stream): `token` streams frame-level
    chunks (a few codec frames each), `sentence` one chunk per sentence. Absent, each route
    keeps its own way. Any other value is a 400 naming the field."""

    stream_mode: StreamMode | None = None


TimestampsFormat = Literal["json", "srt", "vtt"]


class CaptionedSpeechRequest(SpeechRequest):
    """POST /v1/audio/speech/captioned: the speech body, answered as JSON with the audio and
    its word timestamps (Kokoro-FastAPI's captioned speech), and subtitles when asked."""

    timestamps_format: TimestampsFormat = "json"
    # Kokoro's switch; false answers the audio alone in the same JSON shape.
    return_timestamps: bool = True
