"""Long-audio jobs over HTTP (docs/jobs.md):

POST   /v1/audio/jobs                    202 and the job (JSON body, or a .txt/.md file upload)
GET    /v1/audio/jobs                    the caller's jobs, newest first (`after`, `limit`)
GET    /v1/audio/jobs/{id}               status and progress
GET    /v1/audio/jobs/{id}/events        progress as server-sent events, until it ends
GET    /v1/audio/jobs/{id}/content       the audio (Range requests); 409 until it succeeded
GET    /v1/audio/jobs/{id}/subtitles     SRT or WebVTT (`format`), one cue per segment
GET    /v1/audio/jobs/{id}/chapters      the chapter list, with times in the audio
GET    /v1/audio/jobs/{id}/segments      each segment: text, voice, times, attempts
DELETE /v1/audio/jobs/{id}               cancel it and remove its files
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import ValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.datastructures import UploadFile

from server.errors import APIError, conflict, invalid_request, not_found, validation_error
from server.http.routes.uploads import bounded_form, read_file
from server.jobs.inputs import JobRequest
from server.jobs.records import JobRecord
from server.jobs.results import chapters, subtitles, timeline
from server.jobs.runner import JobRunner
from server.jobs.service import accept, job_object, owner_of
from server.jobs.store import FINAL
from server.speech.planning import segment_seed
from server.speech.subtitles import SUBTITLE_MEDIA_TYPES

router = APIRouter()

MAX_PAGE = 100
EVENT_KEEPALIVE_SECONDS = 15.0
EVENT_POLL_SECONDS = 1.0
UPLOAD_SUFFIXES = {".txt": "text", ".md": "markdown", ".markdown": "markdown"}


def _runner(request: Request) -> JobRunner:
    runner: JobRunner = request.app.state.jobs
    return runner


def _owner(request: Request) -> str:
    return owner_of(request.headers.get("authorization"), bool(request.app.state.api_keys))


def _job(request: Request, job_id: str) -> JobRecord:
    job = _runner(request).find(job_id, _owner(request))
    if job is None:
        raise not_found(f"no job {job_id!r}", param="job_id", code="job_not_found")
    return job


async def _form_body(request: Request) -> dict[str, Any]:
    """A multipart job: the text in a `file` part (.txt or .md, UTF-8), the other fields as
    form fields (numbers, booleans and `speakers` written as JSON values)."""
    settings = request.app.state.settings
    async with bounded_form(request, settings.max_upload_bytes) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise invalid_request("file is required: a .txt or .md part with the text", param="file")
        suffix = "." + (upload.filename or "").rpartition(".")[2].lower()
        if suffix not in UPLOAD_SUFFIXES:
            raise invalid_request("file must be a .txt or .md file", param="file")
        raw = await read_file(form, "file", settings.jobs_max_input_bytes)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise invalid_request("file must be UTF-8 text", param="file") from exc
        data: dict[str, Any] = {"input": text, "input_format": UPLOAD_SUFFIXES[suffix]}
        for name, value in form.multi_items():
            if name == "file" or not isinstance(value, str):
                continue
            try:
                parsed = orjson.loads(value)
            except orjson.JSONDecodeError:
                parsed = value
            # A voice or a title that happens to look like a number stays text.
            data[name] = value if isinstance(parsed, (int, float)) and name in ("voice", "model") else parsed
    return data


@router.post("/v1/audio/jobs", status_code=202)
async def create_job(request: Request) -> Response:
    if request.headers.get("content-type", "").startswith("multipart/"):
        data = await _form_body(request)
    else:
        try:
            data = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            raise invalid_request(f"We could not parse the JSON body of your request: {exc}") from exc
    try:
        body = JobRequest.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from exc
    runner = _runner(request)
    job = await accept(runner, request.app.state.speech, body, _owner(request))
    return Response(orjson.dumps(job_object(job, runner)), status_code=202, media_type="application/json")


@router.get("/v1/audio/jobs")
async def list_jobs(
    request: Request, after: str | None = None, limit: int = Query(default=20, ge=1, le=MAX_PAGE)
) -> dict[str, Any]:
    runner = _runner(request)
    if not runner.store.exists():
        return {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}
    jobs, more = runner.store.page(_owner(request), after, limit)
    data = [job_object(job, runner) for job in jobs]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": more,
    }


@router.get("/v1/audio/jobs/{job_id}")
async def get_job(job_id: str, request: Request) -> dict[str, Any]:
    return job_object(_job(request, job_id), _runner(request))


@router.get("/v1/audio/jobs/{job_id}/events")
async def job_events(job_id: str, request: Request) -> Response:
    """A `progress` event at once and after every change, then one `done` event with the
    final job (succeeded, failed) and the end of the stream; `deleted` if it is removed."""
    _job(request, job_id)
    runner, owner = _runner(request), _owner(request)

    async def events() -> AsyncIterator[ServerSentEvent]:
        last: dict[str, Any] | None = None
        while True:
            job = runner.find(job_id, owner)
            if job is None:
                yield ServerSentEvent(orjson.dumps({"id": job_id}).decode(), event="deleted")
                return
            shown = job_object(job, runner)
            if job.status in FINAL:
                yield ServerSentEvent(orjson.dumps(shown).decode(), event="done")
                return
            if shown != last:
                yield ServerSentEvent(orjson.dumps(shown).decode(), event="progress")
                last = shown
            # This process's news wakes it at once; another replica's (a shared store) within
            # a second.
            await runner.changed(EVENT_POLL_SECONDS)

    return EventSourceResponse(events(), ping=int(EVENT_KEEPALIVE_SECONDS))


def _finished(job: JobRecord, what: str) -> None:
    if job.status != "succeeded":
        detail = f" ({job.error})" if job.error else ""
        raise conflict(f"job {job.id} is {job.status}{detail}; its {what} is ready when it has succeeded")


@router.get("/v1/audio/jobs/{job_id}/content")
async def job_content(job_id: str, request: Request) -> Response:
    job = _job(request, job_id)
    _finished(job, "audio")
    runner = _runner(request)
    path = runner.store.result_path(job.id, job.request["extension"])
    if not path.exists() or path.stat().st_size != job.result_bytes:
        raise APIError(
            500,
            f"job {job.id}'s result file is missing or damaged; delete the job and submit it again",
            "server_error",
            None,
            "result_damaged",
        )
    filename = f"{job.id}.{job.request['extension']}"
    return FileResponse(path, media_type=job.request["media_type"], filename=filename)


@router.get("/v1/audio/jobs/{job_id}/subtitles")
async def job_subtitles(job_id: str, request: Request, format: Literal["srt", "vtt"] = "vtt") -> Response:
    job = _job(request, job_id)
    _finished(job, "subtitles")
    text = subtitles(_runner(request).store.segments(job.id), format)
    headers = {"Content-Disposition": f'attachment; filename="{job.id}.{format}"'}
    return Response(text, media_type=SUBTITLE_MEDIA_TYPES[format], headers=headers)


@router.get("/v1/audio/jobs/{job_id}/chapters")
async def job_chapters(job_id: str, request: Request) -> dict[str, Any]:
    job = _job(request, job_id)
    _finished(job, "chapter list")
    return {"object": "list", "data": chapters(_runner(request).store.segments(job.id))}


@router.get("/v1/audio/jobs/{job_id}/segments")
async def job_segments(job_id: str, request: Request) -> dict[str, Any]:
    """Every segment with its state; the times of those done so far, in order."""
    job = _job(request, job_id)
    segments = _runner(request).store.segments(job.id)
    placed = {p.index: p for p in timeline(segments)}
    data = []
    for segment in segments:
        where = placed.get(segment.index)
        data.append(
            {
                "index": segment.index,
                "text": segment.spec.text,
                "voice": segment.spec.voice,
                "chapter": segment.spec.chapter,
                "done": segment.done,
                "attempts": segment.attempts,
                "seed": segment_seed(job.request["seed"], segment.index),
                "start": round(where.start, 3) if where else None,
                "end": round(where.end, 3) if where else None,
                "pause_after_ms": segment.spec.pause_after_ms,
                "words": _words(segment.words, where.start if where else 0.0),
            }
        )
    return {"object": "list", "data": data}


def _words(words: list[list[Any]] | None, start: float) -> list[dict[str, Any]] | None:
    """A segment's word timestamps (asked for with `timestamps: true`), in seconds of the result."""
    if words is None:
        return None
    return [{"word": w, "start": round(start + a, 3), "end": round(start + b, 3)} for w, a, b in words]


@router.delete("/v1/audio/jobs/{job_id}")
async def delete_job(job_id: str, request: Request) -> dict[str, Any]:
    job = _job(request, job_id)
    await _runner(request).delete(job)
    status = "cancelled" if job.status not in FINAL else job.status
    return {"id": job.id, "object": "audio.job.deleted", "deleted": True, "status": status}
