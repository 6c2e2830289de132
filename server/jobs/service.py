"""Accepting a job (every field checked before the 202, as a speech request's are before its
audio) and the job object clients see.

Who owns a job: with API_KEYS, a digest of the key that created it (the key itself is never
stored); a job is found, listed, read and deleted only with that key. Without keys there is
one owner, and every client sees every job.
"""

from __future__ import annotations

import hashlib
from typing import Any

from server.config import Settings
from server.engine.jobs import SAMPLE_RATE
from server.engine.sequence import draw_seed
from server.engine.slots.aligner import HOW_TO_ENABLE, AlignerSlot
from server.errors import APIError, invalid_request
from server.jobs.inputs import JobRequest, plan_segments
from server.jobs.records import JobRecord, SegmentRow
from server.jobs.runner import ENDPOINT, JobLimits, JobRunner
from server.jobs.segments import segment_options
from server.jobs.store import JobStore
from server.speech.planning import pronunciations_of, resolve_language
from server.speech.requests import VoiceFields
from server.speech.synthesis import SpeechService
from server.speech.voice_resolution import ResolvedVoice

OBJECT = "audio.job"
JOBS_PATH = "/v1/audio/jobs"
FIELDS_OVERHEAD_BYTES = 64 * 1024


def owner_of(authorization: str | None, keyed: bool) -> str:
    """The owner a request acts as: its bearer key, digested, when keys are on."""
    if not keyed or not authorization:
        return ""
    token = authorization.partition(" ")[2].strip() or authorization.strip()
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def voice_request(request: dict[str, Any], voice: str) -> VoiceFields:
    """The speech fields a stored job's voice is resolved with."""
    return VoiceFields.model_validate(
        {
            "model": request["model"],
            "voice": voice,
            "response_format": request["response_format"],
            "instructions": request["instructions"],
        }
    )


def voice_resolver(speech: SpeechService) -> Any:
    async def resolve(request: dict[str, Any], voice: str) -> tuple[ResolvedVoice, Any]:
        return await speech.prepare(voice_request(request, voice))

    return resolve


async def accept(runner: JobRunner, speech: SpeechService, body: JobRequest, owner: str) -> JobRecord:
    """Check a job as a speech request would be checked (model, format, every voice and
    language, the token cap), then store it: the 202 means it is on disk."""
    runner.check_room()
    if body.timestamps and runner.aligner is None:
        raise invalid_request(HOW_TO_ENABLE, param="timestamps", code="timestamps_unavailable")
    segments = plan_segments(body, runner.limits.max_input_bytes)
    speech.token_cap_for(body.max_new_tokens)
    fmt = (await speech.prepare(body))[1]
    request: dict[str, Any] = {
        "model": body.model,
        "voice": body.voice_name,
        "response_format": fmt.name,
        "extension": fmt.extension,
        "media_type": fmt.media_type,
        "instructions": body.instructions,
        "language": body.language,
        "speed": body.speed,
        "seed": body.seed if body.seed is not None else draw_seed(),
        "temperature": body.temperature,
        "top_p": body.top_p,
        "top_k": body.top_k,
        "repetition_penalty": body.repetition_penalty,
        "max_new_tokens": body.max_new_tokens,
        "sample_rate": body.sample_rate,
        "gain": body.gain,
        "timestamps": body.timestamps,
        # The request's own pronunciations, applied to every segment (checked here: a 400 now).
        "pronunciations": [entry.model_dump() for entry in body.pronunciations or ()],
    }
    pronunciations_of(body)
    voices = {body.voice_name: await speech.prepare(body)}
    for voice in sorted({s.voice for s in segments} - {body.voice_name}):
        try:
            voices[voice] = await speech.prepare(voice_request(request, voice))
        except Exception as exc:
            param = "speakers" if body.speakers else "inputs"
            raise invalid_request(f"voice {voice!r}: {exc}", param=param) from exc
    for language in {s.language for s in segments if s.language}:
        resolve_language(language, "")
    # A segment with markup (a pause tag, SSML) is planned now, so that a bad tag is a 400
    # here rather than a failed job later; plain segments cannot fail to plan.
    for index, segment in enumerate(segments):
        if "[" in segment.text or "<" in segment.text:
            resolved, segment_format = voices[segment.voice]
            options = segment_options({**request, "seed": 0}, SegmentRow(index, segment, False, None, 0))
            try:
                speech.plan(options, resolved, segment_format, ENDPOINT)
            except APIError as exc:
                raise invalid_request(f"segment {index}: {exc.message}", param=exc.param or "input") from exc
    return runner.submit(owner, request, segments)


def job_object(job: JobRecord, runner: JobRunner) -> dict[str, Any]:
    """A job as the API shows it."""
    request = job.request
    seconds_left = runner.seconds_left(job)
    return {
        "id": job.id,
        "object": OBJECT,
        "status": job.status,
        "model": request["model"],
        "voice": request["voice"],
        "response_format": request["response_format"],
        "sample_rate": request["sample_rate"],
        "seed": request["seed"],
        "created_at": int(job.created_at),
        "started_at": _seconds(job.started_at),
        "finished_at": _seconds(job.finished_at),
        "expires_at": _seconds(job.expires_at),
        "progress": {
            "segments_done": job.segments_done,
            "segments_total": job.segments_total,
            "characters_done": job.chars_done,
            "characters_total": job.chars_total,
            "audio_seconds": round(job.samples_done / SAMPLE_RATE, 3),
            "estimated_seconds_left": round(seconds_left, 1) if seconds_left is not None else None,
        },
        "bytes": job.result_bytes,
        "error": {"message": job.error, "code": job.error_code} if job.error else None,
    }


def _seconds(value: float | None) -> int | None:
    return int(value) if value is not None else None


def job_body_limit(settings: Settings) -> int:
    """The largest JSON body POST /v1/audio/jobs reads: the text limit, with room for JSON's
    escapes and the other fields."""
    return 2 * settings.jobs_max_input_bytes + FIELDS_OVERHEAD_BYTES


def build_job_runner(settings: Settings, speech: SpeechService, aligner: AlignerSlot | None = None) -> JobRunner:
    concurrency = settings.jobs_concurrency or max(settings.max_batch_size - 1, 1)
    limits = JobLimits(
        directory=settings.jobs_dir,
        concurrency=concurrency,
        ttl=settings.jobs_ttl,
        max_disk_bytes=settings.jobs_max_disk_bytes,
        max_queued=settings.jobs_max_queued,
        max_input_bytes=settings.jobs_max_input_bytes,
    )
    return JobRunner(JobStore(settings.jobs_dir), speech, limits, voice_resolver(speech), aligner)
