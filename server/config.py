"""Every setting of the server, read once from the environment into one typed object.

Invalid values stop startup with a message naming the variable; nothing else in the
server reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_MODEL_ID = "Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice"
DEFAULT_CLONE_MODEL_ID = "Qwen/Qwen3-TTS-12Hz-0.6B-Base"


class Settings(BaseSettings):
    """Server settings; each field is the environment variable of the same name, upper-cased."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    host: str = "0.0.0.0"
    port: int = Field(default=8000, ge=1, le=65535)

    model_id: str = DEFAULT_MODEL_ID
    clone_model_id: str = DEFAULT_CLONE_MODEL_ID
    # VoiceDesign model (voices described in words); empty turns the slot off.
    design_model_id: str = ""
    # Qwen3-ForcedAligner for word timestamps (the `aligner` extra); empty turns them off.
    aligner_model_id: str = ""
    device: str = "auto"
    idle_timeout: float = Field(default=120.0, ge=0)
    preload_model: bool = False
    warmup: bool = True
    # On CUDA: capture the frame as CUDA graphs per batch bucket at load; off runs it eagerly.
    cuda_graphs: bool = True
    # CPU threads for torch's intra-op pool; 0 leaves torch's default (one per core).
    torch_threads: int = Field(default=0, ge=0)
    # Weight-only quantization of the talker and code predictor (torchao); fp8 needs a GPU of
    # compute capability 8.9 or newer. The codec stays in full precision.
    quantize: Literal["none", "int8", "fp8"] = "none"

    max_queue_depth: int = Field(default=16, ge=1)
    # Sequences generated together, frame by frame; each reserves a row of key/value memory.
    max_batch_size: int = Field(default=8, ge=1, le=64)
    # Positions of one row (prompt plus generated frames): the longest sequence.
    max_sequence_length: int = Field(default=4096, ge=256, le=32768)
    request_timeout: float = Field(default=300.0, gt=0)
    # Longest wait for a client to take one chunk of a response body before the response
    # is abandoned and its work stopped (a reader that stopped reading holds a queue slot).
    send_timeout: float = Field(default=30.0, gt=0)
    max_new_tokens: int = Field(default=2048, ge=2)
    # Streaming: the first chunk after this many codec frames (80 ms each), each later chunk
    # twice as long, up to STREAM_CHUNK_FRAMES.
    stream_first_chunk_frames: int = Field(default=2, ge=1, le=100)
    stream_chunk_frames: int = Field(default=24, ge=1, le=100)

    # Runaway guards (server/engine/frame/guards.py), each off at 0: quiet frames after the text,
    # frames of a codebook-0 loop after the text, and frames per text token after the text.
    guard_silence_frames: int = Field(default=38, ge=0, le=10_000)
    guard_silence_dbfs: float = Field(default=-50.0, ge=-120.0, le=0.0)
    guard_loop_frames: int = Field(default=50, ge=0, le=1_000)
    guard_tail_ratio: float = Field(default=8.0, ge=0)
    # Seconds the inference thread may hold work without progress before /health says 503
    # and new requests are refused (0: no watchdog); ENGINE_STALL_GRACE seconds later the
    # process exits with status 70 so that its supervisor restarts it.
    engine_stall_timeout: float = Field(default=900.0, ge=0)
    engine_stall_grace: float = Field(default=30.0, ge=0)

    api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = ()

    voices_dir: Path = Path("voices")
    # Names mapped to speakers or saved voices (inline JSON, or a .json/.yaml file), over the
    # built-in OpenAI names: {"alloy": "Vivian", "echo": "saved:Anna"}.
    voice_map: str = ""
    # Pronunciations for every request (docs/text-control.md): a .json, .yaml or PLS (.pls,
    # .xml) file, read again when it changes; empty: none.
    pronunciations_file: str = ""
    voice_cache_max: int = Field(default=32, ge=0)
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    # Finished responses kept for repeats of the same unseeded request; 0 disables the cache.
    audio_cache_max: int = Field(default=256, ge=0)
    audio_cache_max_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    # Largest JSON body; enforced while reading, before anything parses it.
    max_json_bytes: int = Field(default=256 * 1024, ge=1024)
    # WebSocket keepalive: a ping every WS_PING_INTERVAL seconds, the connection closed (1011)
    # when its pong has not come WS_PING_TIMEOUT seconds later; 0 turns the pings off.
    ws_ping_interval: float = Field(default=20.0, ge=0)
    ws_ping_timeout: float = Field(default=20.0, gt=0)
    min_reference_seconds: float = Field(default=1.0, ge=0)
    max_reference_seconds: float = Field(default=30.0, gt=0)

    # Long-audio jobs (docs/jobs.md): the store and the audio files, created with the first job.
    jobs_dir: Path = Path("jobs")
    # Segments of jobs generated at once; 0: MAX_BATCH_SIZE - 1 (a row stays free for requests).
    jobs_concurrency: int = Field(default=0, ge=0, le=64)
    # Seconds a finished job (its record and files) is kept.
    jobs_ttl: float = Field(default=7 * 24 * 3600.0, gt=0)
    jobs_max_disk_bytes: int = Field(default=20 * 1024**3, ge=0)
    jobs_max_queued: int = Field(default=100, ge=1)
    jobs_max_input_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)

    metrics_enabled: bool = True
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    # The web page at /playground/ (and / redirecting to it).
    playground_enabled: bool = True
    # Serve /docs, /redoc and /openapi.json (behind the API key when API_KEYS is set).
    docs_enabled: bool = True
    shutdown_grace: float = Field(default=30.0, ge=0)
    # The Wyoming server (Home Assistant) in the same process; 0 = off. Its host defaults to HOST.
    wyoming_port: int = Field(default=0, ge=0, le=65535)
    wyoming_host: str = ""
    # An event begun (its first byte read) must be complete (header, data, payload) within
    # WYOMING_EVENT_TIMEOUT seconds; a connection that sends nothing for WYOMING_IDLE_TIMEOUT
    # seconds while nothing of it is being answered is closed; at most WYOMING_MAX_CONNECTIONS
    # connections are served at once. Each is answered with an `error` event, then closed.
    wyoming_event_timeout: float = Field(default=10.0, gt=0)
    wyoming_idle_timeout: float = Field(default=60.0, gt=0)
    wyoming_max_connections: int = Field(default=64, ge=1)

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        value = value.strip().lower()
        if value in ("auto", "cpu", "cuda", "mps") or value.startswith("cuda:"):
            return value
        raise ValueError("must be auto, cpu, cuda, cuda:N or mps")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        return _split_csv(value)

    def secret_values(self) -> tuple[str, ...]:
        """The values no log line may show (the API keys)."""
        return tuple(key.get_secret_value() for key in self.api_keys)

    def public_view(self) -> dict[str, object]:
        """The settings as loggable values, secrets masked."""
        view = self.model_dump(mode="json")
        view["api_keys"] = [f"***({len(k.get_secret_value())} chars)" for k in self.api_keys]
        return view


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class SettingsError(RuntimeError):
    """Raised when the environment holds an invalid setting; the message names each one."""


def load_settings(**overrides: object) -> Settings:
    """Read the environment (plus explicit overrides) or raise SettingsError with a clear message."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors())
        raise SettingsError(f"invalid settings: {problems}") from exc
