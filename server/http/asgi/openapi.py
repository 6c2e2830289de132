"""The published OpenAPI document, made to describe the server exactly: FastAPI's defaults
say 422 for validation errors (this server answers 400), describe audio as JSON, and know
nothing of the multipart bodies that the upload routes parse by hand."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from server.audio.formats import FORMATS
from server.config import Settings
from server.http.asgi.gate import protected_path
from server.jobs.inputs import JobRequest
from server.speech.design import DesignedVoiceRequest
from server.speech.requests import MAX_INPUT_CHARS, MAX_SPEED, MIN_SPEED, OutputFields, SamplingFields

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}

_WHEN = {
    400: "A bad field (`param` names it), malformed JSON, an unknown voice or unusable reference audio",
    401: "API_KEYS is set and the bearer key is missing or wrong",
    404: "Unknown model, or unknown voice id",
    409: "The voice name is taken by a preset or a saved voice, or the job has not succeeded (yet)",
    413: "The body is larger than MAX_JSON_BYTES (JSON) or MAX_UPLOAD_BYTES (uploads)",
    415: "A JSON body in a charset other than UTF-8",
    429: "Too many jobs queued (JOBS_MAX_QUEUED), or the jobs' files reached JOBS_MAX_DISK_BYTES",
    500: "A saved voice whose files are damaged, or an unexpected failure",
    503: "The queue is full (Retry-After), the model cannot be loaded, or the server is shutting down",
    504: "Not finished within REQUEST_TIMEOUT; the work was cancelled",
}
_BINARY = {"type": "string", "format": "binary"}
_SPEECH_ERRORS = (400, 404, 413, 415, 500, 503, 504)
_UPLOAD_ERRORS = (400, 413, 500, 503, 504)

# The sampling extensions as form fields, with the JSON body's bounds.
SAMPLING_FIELDS: dict[str, Any] = {
    name: schema["anyOf"][0] if "anyOf" in schema else schema  # the value's schema, not its null
    for name, schema in SamplingFields.model_json_schema()["properties"].items()
}
# sample_rate, gain_db and volume_multiplier, likewise.
OUTPUT_FIELDS: dict[str, Any] = {
    name: schema["anyOf"][0] if "anyOf" in schema else schema
    for name, schema in OutputFields.model_json_schema()["properties"].items()
}
CLONE_FORM: dict[str, Any] = {
    "type": "object",
    "required": ["file", "input"],
    "properties": {
        "file": {**_BINARY, "description": "Reference recording (wav, flac, ogg, mp3, m4a, opus, webm)"},
        "input": {"type": "string", "minLength": 1, "maxLength": MAX_INPUT_CHARS},
        "ref_text": {"type": "string", "maxLength": 2048, "description": "Transcript of the reference (ICL mode)"},
        "language": {"type": "string", "maxLength": 32},
        "response_format": {"type": "string", "maxLength": 32, "default": "mp3"},
        "speed": {"type": "number", "minimum": MIN_SPEED, "maximum": MAX_SPEED, "default": 1.0},
        "seed": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
        **SAMPLING_FIELDS,
        **OUTPUT_FIELDS,
    },
}
VOICE_FORM: dict[str, Any] = {
    "type": "object",
    "required": ["name", "audio_sample"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 64},
        "audio_sample": {**_BINARY, "description": "Reference recording"},
        "ref_text": {"type": "string", "maxLength": 2048},
        "consent": {"type": "string", "maxLength": 1024},
    },
}


def _audio_content(sse: bool) -> dict[str, Any]:
    content: dict[str, Any] = {spec.media_type: {"schema": _BINARY} for spec in FORMATS.values()}
    if sse:
        content["text/event-stream"] = {"schema": {"type": "string"}}
    return content


def _errors(statuses: tuple[int, ...]) -> dict[str, Any]:
    ref = {"$ref": "#/components/schemas/Error"}
    return {str(s): {"description": _WHEN[s], "content": {"application/json": {"schema": ref}}} for s in statuses}


def _multipart(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}


def _voice_bodies() -> dict[str, Any]:
    """An uploaded reference (multipart), or a voice described in words (JSON, `type: prompt`)."""
    body = _multipart(VOICE_FORM)
    body["content"]["application/json"] = {"schema": DesignedVoiceRequest.model_json_schema()}
    return body


# A job's JSON body (its nested models under components/schemas) or a .txt/.md upload.
JOB_SCHEMA = JobRequest.model_json_schema(ref_template="#/components/schemas/{model}")
JOB_DEFS: dict[str, Any] = JOB_SCHEMA.pop("$defs", {})
JOB_FORM: dict[str, Any] = {
    "type": "object",
    "required": ["file", "voice"],
    "properties": {
        "file": {**_BINARY, "description": "The text: a .txt or .md file (UTF-8)"},
        **{name: {"type": "string"} for name in JOB_SCHEMA["properties"] if name not in ("input", "inputs")},
    },
}
_JOB_BODY = _multipart(JOB_FORM)
_JOB_BODY["content"]["application/json"] = {"schema": JOB_SCHEMA}
_JOB = "/v1/audio/jobs/{job_id}"

# Routes outside /v1/ that need the key too (checked by their own dependency).
KEYED_ELSEWHERE = frozenset({"/cache/clear"})

# What each operation answers beyond its JSON 200: (path, method) -> changes.
_OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("/v1/audio/speech", "post"): {"ok": _audio_content(sse=True), "errors": _SPEECH_ERRORS},
    ("/v1/audio/speech/stream", "post"): {
        "ok": {"text/event-stream": {"schema": {"type": "string"}}},
        "errors": _SPEECH_ERRORS,
    },
    ("/v1/audio/speech/stream/pcm", "post"): {"ok": {"audio/pcm": {"schema": _BINARY}}, "errors": _SPEECH_ERRORS},
    ("/v1/audio/speech/captioned", "post"): {
        "ok": {
            "application/json": {"schema": {"type": "object"}},
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
        "errors": _SPEECH_ERRORS,
    },
    ("/v1/audio/speech/clone", "post"): {
        "ok": _audio_content(sse=False),
        "errors": _UPLOAD_ERRORS,
        "body": _multipart(CLONE_FORM),
    },
    ("/v1/audio/voices", "post"): {"errors": (*_UPLOAD_ERRORS, 409), "body": _voice_bodies()},
    ("/v1/audio/voices/{voice_id}", "get"): {"errors": (404,)},
    ("/v1/audio/voices/{voice_id}", "delete"): {"errors": (404,)},
    ("/v1/audio/jobs", "post"): {"errors": (*_SPEECH_ERRORS, 429), "body": _JOB_BODY},
    ("/v1/audio/jobs", "get"): {"errors": (400,)},
    (_JOB, "get"): {"errors": (404,)},
    (_JOB, "delete"): {"errors": (404,)},
    (f"{_JOB}/events", "get"): {"ok": {"text/event-stream": {"schema": {"type": "string"}}}, "errors": (404,)},
    (f"{_JOB}/content", "get"): {"ok": _audio_content(sse=False), "errors": (404, 409, 500)},
    (f"{_JOB}/subtitles", "get"): {
        "ok": {"text/vtt": {"schema": {"type": "string"}}, "application/x-subrip": {"schema": {"type": "string"}}},
        "errors": (400, 404, 409),
    },
    (f"{_JOB}/chapters", "get"): {"errors": (404, 409)},
    (f"{_JOB}/segments", "get"): {"errors": (404,)},
}


def build_document(app: FastAPI, settings: Settings) -> dict[str, Any]:
    document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    schemas.update(JOB_DEFS)
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    keyed = bool(settings.api_keys)
    if keyed:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)  # validation errors are 400s here
            change = _OPERATIONS.get((path, method), {})
            if "ok" in change:
                responses["200"] = {"description": "The audio", "content": change["ok"]}
            if "body" in change:
                operation["requestBody"] = change["body"]
            errors = change.get("errors", ())
            if keyed and (protected_path(path, method.upper()) or path in KEYED_ELSEWHERE):
                operation["security"] = [{"bearer": []}]
                errors = (*errors, 401)
            responses.update(_errors(tuple(sorted(set(errors)))))
    return document


def install_openapi(app: FastAPI, settings: Settings) -> None:
    cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if "document" not in cache:
            cache["document"] = build_document(app, settings)
        return dict(cache["document"])

    app.openapi = openapi  # type: ignore[method-assign]
