"""Continuous batching on the real engine: requests join and leave a running batch between
frames, every seeded request gives the same audio whatever shares its batch, a request that
arrives while others run starts before they finish, a cancelled one leaves the others
unharmed, and the batch never grows past MAX_BATCH_SIZE.

Batches are formed deterministically: the inference thread is held while requests queue up,
or a request's consumer stops reading so it stays in the batch as long as the test needs."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from server.audio.dsp import to_pcm16_bytes
from server.engine.jobs import CloneVoice
from server.speech.planning import SpeechOptions
from server.speech.requests import SpeechRequest
from server.speech.voice_resolution import ResolvedVoice
from tests.http.test_clone import clone
from tests.support.audio import decode_pcm16
from tests.support.engine_control import inference_held, on_server_loop, wait_until
from tests.support.live_server import LiveServer, RecordCollector, live_server
from tests.support.reference import wav

BODY = {"model": "tts-1", "voice": "alloy", "response_format": "pcm", "stream": False}
LONG = " ".join(f"Sentence {i} of the long one goes on." for i in range(12))


@pytest.fixture(scope="module")
def batching_server(custom_voice_dir: Path, base_dir: Path) -> Iterator[LiveServer]:
    with live_server(
        model_id=str(custom_voice_dir),
        clone_model_id=str(base_dir),
        preload_model=True,
        idle_timeout=0,
        max_batch_size=4,
        max_new_tokens=64,
    ) as server:
        yield server


def post(server: LiveServer, request_id: str, body: dict[str, Any]) -> httpx.Response:
    with server.client(headers={"X-Request-ID": request_id}) as client:
        return client.post("/v1/audio/speech", json=body)


def together(server: LiveServer, bodies: dict[str, dict[str, Any]]) -> dict[str, httpx.Response]:
    """Send every request while the engine is held, so all of them start in one batch."""
    with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
        with inference_held(server):
            futures = {rid: pool.submit(post, server, rid, body) for rid, body in bodies.items()}
            wait_until(lambda: server.engine.depth == len(bodies))
        return {rid: future.result() for rid, future in futures.items()}


def logged(request_log: RecordCollector, request_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each request's log line (written once its last byte is handed over: waited for)."""
    return {rid: request_log.wait_for_request(rid) for rid in request_ids}


def pcm(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return decode_pcm16(response.content).samples


MIXED = {
    "mix-vivian": {**BODY, "input": "A short one.", "seed": 1},
    "mix-ryan-long": {
        **BODY,
        "voice": "Ryan",
        "input": "This request is a good deal longer than the others.",
        "seed": 2,
    },
    "mix-german": {**BODY, "voice": "Serena", "input": "Guten Tag, wie geht es?", "language": "German", "seed": 3},
    "mix-sampling": {
        **BODY,
        "voice": "Eric",
        "input": "Other sampling settings.",
        "seed": 4,
        "temperature": 1.4,
        "top_k": 5,
        "top_p": 0.7,
        "repetition_penalty": 1.3,
    },
}


def test_seeded_requests_give_the_same_audio_in_a_batch_as_alone(
    batching_server: LiveServer, request_log: RecordCollector
) -> None:
    """Mixed lengths, voices, languages and sampling settings in one batch: each request's
    audio equals its audio alone, sample for sample."""
    alone = {rid: pcm(post(batching_server, f"{rid}-alone", body)) for rid, body in MIXED.items()}
    batched = together(batching_server, MIXED)
    for rid in MIXED:
        assert np.array_equal(pcm(batched[rid]), alone[rid]), rid
    lines = logged(request_log, [*MIXED, *(f"{rid}-alone" for rid in MIXED)])
    assert {lines[rid]["batch_max"] for rid in MIXED} == {4}
    assert {lines[f"{rid}-alone"]["batch_max"] for rid in MIXED} == {1}


def test_cloned_voices_batch_together_in_both_modes(batching_server: LiveServer, request_log: RecordCollector) -> None:
    reference = wav(seed=61)
    fields = {"clone-icl": {"ref_text": "Some reference words."}, "clone-xvec": {}}
    alone = {rid: clone(batching_server, reference, response_format="pcm", **f).content for rid, f in fields.items()}

    def run(rid: str) -> httpx.Response:
        data = {"input": "Hello from a cloned voice.", "response_format": "pcm", "seed": "3", **fields[rid]}
        with batching_server.client(headers={"X-Request-ID": rid}) as client:
            return client.post("/v1/audio/speech/clone", data=data, files={"file": ("ref.wav", reference)})

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        with inference_held(batching_server):
            futures = {rid: pool.submit(run, rid) for rid in fields}
            wait_until(lambda: batching_server.engine.depth == 2)
        results = {rid: future.result() for rid, future in futures.items()}
    for rid in fields:
        assert np.array_equal(pcm(results[rid]), decode_pcm16(alone[rid]).samples), rid
    lines = logged(request_log, list(fields))
    assert lines["clone-icl"]["batch_max"] == lines["clone-xvec"]["batch_max"] == 2


async def _first_chunk(stream: Any) -> Any:
    return await anext(stream)


async def _rest(stream: Any, into: list[Any]) -> None:
    async for chunk in stream:
        into.append(chunk)


def test_a_newcomer_starts_while_a_long_request_runs(batching_server: LiveServer) -> None:
    """The long request's consumer takes one chunk and stops: the request keeps its row,
    unfinished. A short request sent then gets all its audio meanwhile; the long one then
    completes, its audio equal to its audio alone."""
    service = batching_server.app.state.speech
    long_body = {**BODY, "input": LONG, "seed": 8}
    plan = on_server_loop(batching_server, service.plan_request(SpeechRequest.model_validate(long_body), "test"))
    alone = post(batching_server, "long-alone", long_body).content
    stream = batching_server.engine.synthesize(plan.job)
    chunks = [on_server_loop(batching_server, _first_chunk(stream))]
    short = post(batching_server, "newcomer", {**BODY, "input": "I came later.", "seed": 9})
    assert short.status_code == 200
    assert batching_server.engine.depth == 1  # the long one is still running
    assert batching_server.health()["models"]["custom_voice"]["active_sequences"] == 1
    on_server_loop(batching_server, _rest(stream, chunks))
    assert chunks[-1].segment_end and chunks[-1].segment == len(plan.job.segments) - 1
    assert to_pcm16_bytes(np.concatenate([chunk.pcm for chunk in chunks])) == alone


def test_one_client_leaving_does_not_harm_the_others(batching_server: LiveServer, request_log: RecordCollector) -> None:
    bodies = {f"stayer-{i}": {**BODY, "input": LONG, "seed": 20 + i} for i in range(2)}
    alone = {rid: pcm(post(batching_server, f"{rid}-alone", body)) for rid, body in bodies.items()}

    def leave_early() -> None:
        with contextlib.ExitStack() as held:
            with (
                batching_server.client(headers={"X-Request-ID": "leaver"}) as client,
                client.stream("POST", "/v1/audio/speech", json={**BODY, "input": LONG, "stream": True}) as response,
            ):
                next(response.iter_raw())
                # Leave while the engine is held, so the request cannot have finished first.
                held.enter_context(inference_held(batching_server))
            request_log.wait_for_request("leaver")

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        leaver = pool.submit(leave_early)
        stayers = {rid: pool.submit(post, batching_server, rid, body) for rid, body in bodies.items()}
        leaver.result()
        results = {rid: future.result() for rid, future in stayers.items()}
    for rid in bodies:
        assert np.array_equal(pcm(results[rid]), alone[rid])
    assert request_log.wait_for_request("leaver")["status"] == 499
    wait_until(lambda: batching_server.health()["models"]["custom_voice"]["active_sequences"] == 0)
    assert batching_server.health()["queue_depth"] == 0


def test_the_batch_is_bounded_and_the_queue_beyond_it_waits_in_order(
    custom_voice_dir: Path, request_log: RecordCollector
) -> None:
    with live_server(
        model_id=str(custom_voice_dir), preload_model=True, max_batch_size=2, max_queue_depth=4, max_new_tokens=32
    ) as server:
        bodies = {f"bound-{i}": {**BODY, "input": f"Request number {i} waits its turn.", "seed": i} for i in range(4)}
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            with inference_held(server):
                futures = {}
                for admitted, (rid, body) in enumerate(bodies.items(), start=1):
                    futures[rid] = pool.submit(post, server, rid, body)
                    wait_until(lambda n=admitted: server.engine.depth == n)  # type: ignore[misc]
                refused = post(server, "bound-refused", {**BODY, "input": "No room."})
            results = {rid: future.result() for rid, future in futures.items()}
        assert all(r.status_code == 200 for r in results.values())
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        started = [r.request_id for r in request_log.records if r.getMessage() == "segment started"]
        assert [rid for rid in started if rid in bodies] == list(bodies)
        lines = logged(request_log, list(bodies))
        assert max(lines[rid]["batch_max"] for rid in bodies) == 2
        assert server.health()["models"]["custom_voice"]["active_sequences"] == 0


def test_batch_size_one_runs_requests_one_at_a_time(custom_voice_dir: Path, request_log: RecordCollector) -> None:
    with live_server(model_id=str(custom_voice_dir), preload_model=True, max_batch_size=1, max_new_tokens=24) as srv:
        bodies = {f"solo-{i}": {**BODY, "input": f"Solo request {i}.", "seed": i} for i in range(3)}
        assert all(r.status_code == 200 for r in together(srv, bodies).values())
        assert srv.health()["max_batch_size"] == 1
    lines = logged(request_log, list(bodies))
    assert {lines[rid]["batch_max"] for rid in bodies} == {1}


def test_both_models_take_turns_on_the_inference_thread(batching_server: LiveServer) -> None:
    """A preset job and a cloned-voice job at once: the thread steps the two models in turn,
    so each gets its first audio before either has finished."""
    service = batching_server.app.state.speech
    clones = batching_server.app.state.clones
    text = " ".join(f"Sentence {i} keeps both models busy." for i in range(6))
    events: list[tuple[str, bool]] = []

    async def scenario() -> None:
        preset = await service.plan_request(SpeechRequest.model_validate({**BODY, "input": text, "seed": 1}), "t")
        audio = await clones.decode(wav(seed=70), param="file")
        prompt = await clones.prompt_for(audio, None)
        voice = ResolvedVoice(slot="base", label="clone", clone=CloneVoice(prompt=prompt.prompt))
        options = SpeechOptions(input=text, response_format="pcm", seed=2)
        cloned = service.plan(options, voice, preset.format, "t")

        async def run(name: str, job: Any) -> None:
            async for chunk in batching_server.engine.synthesize(job):
                events.append((name, chunk.segment_end and chunk.segment == len(job.segments) - 1))

        await asyncio.gather(run("preset", preset.job), run("clone", cloned.job))

    on_server_loop(batching_server, scenario())
    first_end = min(i for i, (_, last) in enumerate(events) if last)
    assert {name for name, _ in events[:first_end]} == {"preset", "clone"}
