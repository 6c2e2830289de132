"""POST /v1/audio/speech/captioned: speech with its word timestamps, as Kokoro-FastAPI's
captioned speech answers it, plus subtitles.

The text is spoken one sentence per segment, and each sentence is aligned as soon as its
audio is complete, while the next one is generated.

- `stream: false`: one JSON object, `{"audio": <base64 of the whole file in response_format>,
  "audio_format", "timestamps": [{"word", "start_time", "end_time"}], "segments": [...],
  "finish_reason", "seed", "sample_rate"}`, and with `timestamps_format` srt or vtt also
  `"subtitles"` (the file's text) and `"subtitles_format"`.
- `stream: true` (the default, as on /v1/audio/speech): newline-delimited JSON, one object
  per line. Audio lines are `{"audio": <base64 of the next bytes of the file>,
  "audio_format", "timestamps": []}`; after each sentence's audio, a line with `"audio": ""`
  carries its words in `timestamps` and the sentence (`segment`, `text`, `start_time`,
  `end_time`, `error` when its words could not be made). The last line has `"done": true`,
  `finish_reason`, `seed`, and the whole subtitles file when asked for; a failure ends the
  stream with `{"error": {...}}` instead. Decoding every line's `audio` in order gives the file.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from server.errors import invalid_request, to_api_error
from server.http.routes.cached_speech import attachment_headers
from server.http.routes.responding import logged_once_sent, synthesize_file, timing_of
from server.http.routes.streaming import SegmentStream, audio_pieces
from server.speech.planning import SpeechPlan
from server.speech.request_log import SpeechStats
from server.speech.requests import CaptionedSpeechRequest
from server.speech.subtitles import render_subtitles
from server.speech.synthesis import SpeechService
from server.speech.timestamps import SegmentWords, WordTimer
from server.web.responses import OrjsonResponse

router = APIRouter()

CAPTIONED_ENDPOINT = "/v1/audio/speech/captioned"
NDJSON_MEDIA_TYPE = "application/x-ndjson"


def wants_words(body: CaptionedSpeechRequest) -> bool:
    """Kokoro's `return_timestamps` and our `timestamps` both say it; they may not disagree."""
    if "timestamps" not in body.model_fields_set:
        return body.return_timestamps
    if "return_timestamps" in body.model_fields_set and body.timestamps != body.return_timestamps:
        raise invalid_request("timestamps and return_timestamps disagree; give one of them", param="timestamps")
    return body.timestamps


def words_of(segments: list[SegmentWords]) -> list[dict[str, Any]]:
    return [word.as_json() for segment in segments for word in segment.words]


def subtitles_fields(body: CaptionedSpeechRequest, segments: list[SegmentWords]) -> dict[str, Any]:
    if body.timestamps_format == "json":
        return {}
    return {"subtitles": render_subtitles(segments, body.timestamps_format), "subtitles_format": body.timestamps_format}


def ending_fields(plan: SpeechPlan, stats: SpeechStats) -> dict[str, Any]:
    return {"finish_reason": stats.finish_reason.value, "seed": plan.job.seed, "sample_rate": plan.sample_rate}


@router.post(CAPTIONED_ENDPOINT)
async def captioned_speech(body: CaptionedSpeechRequest, request: Request) -> Response:
    if body.stream_format != "audio":
        raise invalid_request("this endpoint answers JSON (stream: true for NDJSON), not sse", param="stream_format")
    timed = wants_words(body)
    if not timed and body.timestamps_format != "json":
        raise invalid_request("subtitles need the word timestamps", param="timestamps_format")
    timing = timing_of(request)
    if timed:
        timing.require("return_timestamps" if "timestamps" not in body.model_fields_set else "timestamps")
    service: SpeechService = request.app.state.speech
    plan = await service.plan_request(body, endpoint=CAPTIONED_ENDPOINT, per_sentence=True)
    timer = timing.timer(plan) if timed else None
    if body.stream:
        stream = await SegmentStream(service, plan, per_sentence=True, timer=timer).open()
        lines = ndjson_lines(stream, body)
        return stream.response(StreamingResponse(lines, media_type=NDJSON_MEDIA_TYPE, headers=stream.headers()))
    return await captioned_whole(service, plan, body, timer)


async def captioned_whole(
    service: SpeechService, plan: SpeechPlan, body: CaptionedSpeechRequest, timer: WordTimer | None
) -> Response:
    stats = SpeechStats()
    try:
        data = await synthesize_file(service, plan, stats, timer.segment_done if timer is not None else None)
        segments = await timer.remaining() if timer is not None else []
    finally:
        if timer is not None:
            timer.cancel()
    content = {
        "audio": base64.b64encode(data).decode(),
        "audio_format": plan.format.name,
        "timestamps": words_of(segments),
        "segments": [segment.as_json() for segment in segments],
        **ending_fields(plan, stats),
        **subtitles_fields(body, segments),
    }
    headers = attachment_headers(plan, stats.instructions_ignored, stats.finish_reason)
    del headers["Content-Disposition"]  # JSON, not the audio file
    return logged_once_sent(service, plan, stats, OrjsonResponse(content, headers=headers))


def _line(content: dict[str, Any]) -> bytes:
    return orjson.dumps(content) + b"\n"


async def ndjson_lines(stream: SegmentStream, body: CaptionedSpeechRequest) -> AsyncIterator[bytes]:
    audio_format = stream.plan.format.name
    segments: list[SegmentWords] = []
    try:
        async for piece in audio_pieces(stream):
            if isinstance(piece, SegmentWords):
                segments.append(piece)
                sentence = piece.as_json()
                words = sentence.pop("words")
                yield _line({"audio": "", "audio_format": audio_format, "timestamps": words, **sentence})
                continue
            yield _line({"audio": base64.b64encode(piece).decode(), "audio_format": audio_format, "timestamps": []})
    except Exception as exc:
        yield _line({"error": to_api_error(exc).body()["error"]})
        return
    yield _line(
        {
            "audio": "",
            "audio_format": audio_format,
            "timestamps": [],
            "done": True,
            **ending_fields(stream.plan, stream.stats),
            **subtitles_fields(body, segments),
        }
    )
