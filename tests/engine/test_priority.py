"""Interactive jobs (a WebSocket utterance) are admitted before bulk jobs that have waited
longer, and first among themselves in arrival order; background work (a long-audio job's
segments) only after every other job, however long it has waited."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from server.engine.jobs import SynthesisJob
from server.speech.requests import SpeechRequest
from tests.support.engine_control import inference_held, on_server_loop, wait_until
from tests.support.live_server import RecordCollector, live_server

BODY = {"model": "tts-1", "voice": "alloy", "response_format": "pcm", "seed": 1}


def test_interactive_jobs_go_first_and_background_work_last(
    custom_voice_dir: Path, request_log: RecordCollector
) -> None:
    with live_server(model_id=str(custom_voice_dir), preload_model=True, max_batch_size=1, max_new_tokens=16) as srv:
        service = srv.app.state.speech

        def job(text: str, kind: str) -> SynthesisJob:
            plan = on_server_loop(srv, service.plan_request(SpeechRequest.model_validate({**BODY, "input": text}), "t"))
            return dataclasses.replace(plan.job, interactive=kind == "live", background=kind == "back")

        order = [("back-1", "back"), ("bulk-1", "bulk"), ("bulk-2", "bulk"), ("live-1", "live"), ("live-2", "live")]
        jobs = {name: job(f"Job {name} speaks.", kind) for name, kind in order}

        async def run(name: str) -> None:
            from server.logs import request_id_var

            request_id_var.set(name)
            async for _ in srv.engine.synthesize(jobs[name]):
                pass

        async def all_of_them() -> None:
            await asyncio.gather(*(run(name) for name, _ in order))

        with inference_held(srv):  # all four wait together for the one row
            future = asyncio.run_coroutine_threadsafe(all_of_them(), srv.engine.loop)
            wait_until(lambda: srv.engine.depth == len(order))
        future.result(120)
    started = [r.request_id for r in request_log.records if r.getMessage() == "segment started"]
    assert started == ["live-1", "live-2", "bulk-1", "bulk-2", "back-1"]
