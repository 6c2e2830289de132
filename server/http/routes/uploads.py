"""Multipart uploads with bounded size, and the form fields that come with them.

Forms are parsed here rather than by FastAPI's `Form()`/`File()` parameters because those
parse the whole body before any check of ours can run. The request gate has already
refused a body whose Content-Length is too big, and counts the bytes the form parser
reads: a chunked body that grows past the limit stops being read there (413).
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData, UploadFile

from server.errors import invalid_request, payload_too_large
from server.http.asgi.gate import BodyTooLarge
from server.speech.requests import (
    MAX_INPUT_CHARS,
    MAX_SPEED,
    MIN_SPEED,
    OutputFields,
    SamplingFields,
    refuse_unhonoured_fields,
)

MAX_FIELDS = 16
READ_CHUNK = 256 * 1024

FormModel = TypeVar("FormModel", bound=BaseModel)


def _too_large(limit: int, param: str | None) -> Exception:
    return payload_too_large(f"the upload exceeds the limit of {limit} bytes", param=param)


@asynccontextmanager
async def bounded_form(request: Request, max_upload_bytes: int) -> AsyncIterator[FormData]:
    """The request's multipart form; 413 when the body grows past its limit while being read,
    400 when it is not a multipart form. Spooled files are closed on exit."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise invalid_request("this endpoint takes a multipart/form-data body")
    try:
        form = await request.form(max_files=1, max_fields=MAX_FIELDS)
    except BodyTooLarge as exc:
        raise _too_large(max_upload_bytes, None) from exc
    except Exception as exc:
        raise invalid_request(f"the multipart body could not be parsed: {exc}") from exc
    try:
        yield form
    finally:
        await form.close()


async def read_file(form: FormData, name: str, limit: int) -> bytes:
    """The bytes of file field `name`, refused with 413 past `limit` before they are all read."""
    upload = form.get(name)
    if not isinstance(upload, UploadFile):
        raise invalid_request(f"{name} is required: a file part with the reference audio", param=name)
    if upload.size is not None and upload.size > limit:
        raise _too_large(limit, name)
    chunks: list[bytes] = []
    total = 0
    while chunk := await upload.read(READ_CHUNK):
        total += len(chunk)
        if total > limit:
            raise _too_large(limit, name)
        chunks.append(chunk)
    return b"".join(chunks)


def text_field(form: FormData, name: str, *, max_chars: int, required: bool = False) -> str | None:
    """A text field's value; None when absent or blank (unless required)."""
    value = form.get(name)
    if isinstance(value, UploadFile):
        raise invalid_request(f"{name} must be a text field, not a file", param=name)
    if value is None or not value.strip():
        if required:
            raise invalid_request(f"{name} is required", param=name)
        return None
    if len(value) > max_chars:
        raise invalid_request(f"{name} is longer than {max_chars} characters", param=name)
    return value


def input_field(form: FormData) -> str:
    text = text_field(form, "input", max_chars=MAX_INPUT_CHARS, required=True)
    assert text is not None  # required=True never returns None
    return text


def speed_field(form: FormData) -> float:
    raw = text_field(form, "speed", max_chars=32)
    if raw is None:
        return 1.0
    try:
        speed = float(raw)
    except ValueError as exc:
        raise invalid_request("speed must be a number", param="speed") from exc
    if not math.isfinite(speed):
        raise invalid_request("speed must be a finite number", param="speed")
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise invalid_request(f"speed must be between {MIN_SPEED} and {MAX_SPEED}", param="speed")
    return speed


def seed_field(form: FormData) -> int | None:
    raw = text_field(form, "seed", max_chars=16)
    if raw is None:
        return None
    if not re.fullmatch(r"\d+", raw.strip()) or int(raw) > 2**31 - 1:
        raise invalid_request("seed must be an integer from 0 to 2147483647", param="seed")
    return int(raw)


def sampling_fields(form: FormData) -> SamplingFields:
    """The sampling extensions as form fields, with the JSON body's bounds; 400 naming the field."""
    return _form_model(form, SamplingFields)


def output_fields(form: FormData) -> OutputFields:
    """sample_rate, gain_db and volume_multiplier as form fields; the fields this server
    refuses (volume, normalize, ...) are refused here as in a JSON body."""
    refuse_unhonoured_fields(
        {name: value.strip().lower() for name, value in form.items() if isinstance(value, str) and value.strip()}
    )
    return _form_model(form, OutputFields)


def _form_model(form: FormData, model: type[FormModel]) -> FormModel:
    values = {}
    for name in model.model_fields:
        raw = text_field(form, name, max_chars=32)
        if raw is not None:
            values[name] = raw.strip()
    try:
        # Form fields are text: read as numbers and booleans here (JSON bodies are strict).
        return model.model_validate(values, strict=False)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = str(first["loc"][0]) if first["loc"] else None
        raise invalid_request(f"{param}: {first['msg']}", param=param) from exc
