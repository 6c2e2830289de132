"""A request's record without a server: one `RequestLog.write` sends the same fields to the log
line, the recent list and the metrics; fields that match the server's defaults stay out of a
plain request's line; the finish reason follows the status when a request did not complete."""

from __future__ import annotations

import contextvars
import logging
from typing import Any

import pytest

from server.engine.jobs import ChunkPlan, FinishReason, SamplingParams
from server.logs import request_logged_var
from server.metrics import Metrics
from server.speech.catalog import ModelCatalog
from server.speech.planning import SpeechOptions, SpeechPlan, SpeechPlanner, resolve_format
from server.speech.recent import RecentRequests
from server.speech.request_log import RequestLog, SpeechStats
from server.speech.requests import VoiceFields
from server.speech.voice_resolution import ResolvedVoice

TOKEN_CAP = 2048
VOICE = ResolvedVoice(slot="custom_voice", label="Vivian", speaker="Vivian")
ALWAYS = {
    "request_id", "endpoint", "status", "queue_ms", "load_ms", "inference_ms", "encode_ms", "total_ms", "ttfa_ms",
    "first_chunk_ms", "first_chunk_frames", "chunks", "segments", "segments_done", "chars", "voice", "format",
    "language", "audio_seconds", "output_frames", "batch_max", "finish_reason", "seed",
}  # fmt: skip


class UnusedVoices:
    async def for_request(self, request: VoiceFields) -> ResolvedVoice:
        raise AssertionError("these plans are made from options, not requests")


class RecordedMetrics(Metrics):
    def __init__(self) -> None:
        super().__init__()
        self.observed: list[dict[str, Any]] = []

    def observe_request(self, **fields: Any) -> None:
        self.observed.append(fields)


def plan_of(options: SpeechOptions) -> SpeechPlan:
    planner = SpeechPlanner(ModelCatalog("custom", "base"), UnusedVoices(), TOKEN_CAP, ChunkPlan())
    return planner.plan(options, VOICE, resolve_format(options.response_format), "/v1/audio/speech")


def test_one_write_reaches_the_log_line_the_recent_list_and_the_metrics(caplog: pytest.LogCaptureFixture) -> None:
    metrics, recent = RecordedMetrics(), RecentRequests()
    plan = plan_of(SpeechOptions("Hello there.", "wav", language="English", seed=5))
    stats = SpeechStats(queue_ms=1.26, inference_ms=20.0, samples=24_000, finish_reasons=[FinishReason.STOP])
    context = contextvars.copy_context()  # the write marks the request logged in its own context
    with caplog.at_level(logging.INFO, logger="qwen3-tts"):
        context.run(RequestLog(TOKEN_CAP, metrics, recent).write, plan, stats, 200)
    [record] = [record for record in caplog.records if record.getMessage() == "speech request"]
    logged = {key: getattr(record, key) for key in ALWAYS}
    assert (logged["status"], logged["voice"], logged["format"], logged["seed"]) == (200, "Vivian", "wav", 5)
    assert (logged["queue_ms"], logged["audio_seconds"], logged["finish_reason"]) == (1.3, 1.0, "stop")
    assert context[request_logged_var]
    [entry] = recent.newest_first()
    assert {key: entry[key] for key in ALWAYS} == logged
    [observed] = metrics.observed
    assert observed["total_ms"] == pytest.approx(logged["total_ms"], abs=0.05)  # one clock reading for both
    assert (observed["endpoint"], observed["audio_seconds"], observed["finish_reason"]) == (
        "/v1/audio/speech",
        1.0,
        "stop",
    )


def test_a_plain_request_logs_only_the_fields_every_request_has() -> None:
    fields = RequestLog(TOKEN_CAP).fields(plan_of(SpeechOptions("Hello.", "mp3")), SpeechStats(), 200, 12.0)
    assert set(fields) == ALWAYS


def test_what_differs_from_the_defaults_is_logged() -> None:
    options = SpeechOptions(
        "Hello.",
        "mp3",
        sampling=SamplingParams(temperature=0.3),
        max_new_tokens=100,
        sample_rate=16000,
        gain=0.25,
    )
    stats = SpeechStats(
        instructions_ignored=True, cache="miss", finish_reasons=[FinishReason.STOP, FinishReason.LENGTH]
    )
    fields = RequestLog(TOKEN_CAP).fields(plan_of(options), stats, 500, 12.0, error="boom")
    extra = {key: value for key, value in fields.items() if key not in ALWAYS}
    assert extra == {
        "segment_finish_reasons": ["stop", "length"],
        "instructions_ignored": True,
        "cache": "miss",
        "sampling": {"temperature": 0.3},
        "max_new_tokens": 100,
        "sample_rate": 16000,
        "gain": 0.25,
        "error": "boom",
    }
    assert fields["finish_reason"] == "error"  # the status says how it ended, not the segments


@pytest.mark.parametrize(
    ("status", "reason"), [(499, FinishReason.CANCELLED), (504, FinishReason.TIMEOUT), (503, FinishReason.ERROR)]
)
def test_a_request_that_did_not_complete_is_logged_by_what_stopped_it(status: int, reason: FinishReason) -> None:
    stats = SpeechStats(finish_reasons=[FinishReason.STOP])
    assert RequestLog(TOKEN_CAP).fields(plan_of(SpeechOptions("Hi.", "mp3")), stats, status, 1.0)["finish_reason"] == (
        reason.value
    )
