"""POST /v1/audio/speech/clone: speech in the voice of an uploaded reference recording."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.engine.jobs import CloneVoice
from server.http.routes.responding import render_whole
from server.http.routes.uploads import (
    bounded_form,
    input_field,
    output_fields,
    read_file,
    sampling_fields,
    seed_field,
    speed_field,
    text_field,
)
from server.logs import request_id_var
from server.speech.cloning import CloneService
from server.speech.planning import SpeechOptions, resolve_format, resolve_language, sampling_of
from server.speech.synthesis import SpeechService
from server.speech.voice_resolution import ResolvedVoice

router = APIRouter()
log = logging.getLogger("qwen3-tts")

ENDPOINT = "/v1/audio/speech/clone"
MAX_REF_TEXT_CHARS = 2048


@router.post(ENDPOINT)
async def create_cloned_speech(request: Request) -> Response:
    """Multipart fields: file, input, ref_text?, language?, response_format?, speed?, seed?, the
    sampling fields (temperature?, top_p?, top_k?, repetition_penalty?, max_new_tokens?) and
    the output fields (sample_rate?, gain_db?, volume_multiplier?)."""
    service: SpeechService = request.app.state.speech
    clones: CloneService = request.app.state.clones
    limit: int = request.app.state.settings.max_upload_bytes
    async with bounded_form(request, limit) as form:
        data = await read_file(form, "file", limit)
        sampling = sampling_fields(form)
        output = output_fields(form)
        options = SpeechOptions(
            input=input_field(form),
            response_format=(text_field(form, "response_format", max_chars=32) or "mp3").strip().lower(),
            speed=speed_field(form),
            language=text_field(form, "language", max_chars=32),
            seed=seed_field(form),
            sampling=sampling_of(sampling),
            max_new_tokens=sampling.max_new_tokens,
            sample_rate=output.sample_rate,
            gain=output.gain,
        )
        ref_text = text_field(form, "ref_text", max_chars=MAX_REF_TEXT_CHARS)
    # Everything cheap is validated before the reference is decoded or the model runs.
    fmt = resolve_format(options.response_format)
    resolve_language(options.language, options.input)
    audio = await clones.decode(data, param="file")
    prompt = await clones.prompt_for(audio, ref_text)
    log.info(
        "clone prompt",
        extra={
            "request_id": request_id_var.get(),
            "endpoint": ENDPOINT,
            "mode": prompt.mode,
            "cache": "hit" if prompt.cache_hit else "miss",
            "prompt_ms": round(prompt.prompt_ms, 1),
            "reference_seconds": round(audio.shape[0] / 24_000, 3),
        },
    )
    voice = ResolvedVoice(slot="base", label=f"clone:{prompt.mode}", clone=CloneVoice(prompt=prompt.prompt))
    return await render_whole(service, service.plan(options, voice, fmt, ENDPOINT))
