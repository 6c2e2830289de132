"""The speech WebSocket on the live server, driven by the `websockets` client: utterances
(the earlier server's protocol), text streams spoken sentence by sentence, errors that
leave the connection usable, and clients that leave mid-utterance."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time

import numpy as np
import pytest
import soxr

from server.text import split_sentences
from tests.support.audio import decode_av, decode_pcm16
from tests.support.engine_control import inference_held, on_server_loop, wait_until
from tests.support.live_server import LiveServer, RecordCollector
from tests.support.ws import receive_first_audio, receive_until_end, send, ws_connect

UTTERANCE = {"input": "The socket speaks. It says two sentences.", "voice": "Ryan", "seed": 5, "max_new_tokens": 32}
LONG = " ".join(f"Sentence {i} goes on for a little while." for i in range(10))


def http_pcm(server: LiveServer, body: dict[str, object]) -> bytes:
    with server.client() as client:
        response = client.post("/v1/audio/speech", json={**body, "response_format": "pcm", "stream": False})
    assert response.status_code == 200
    return response.content


def wait_until_idle(server: LiveServer, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while server.health()["queue_depth"] != 0:
        assert time.monotonic() < deadline, "the queue did not drain"
        time.sleep(0.05)


def test_utterance_is_int16_pcm_then_done_like_the_http_response(server: LiveServer) -> None:
    with ws_connect(server, additional_headers={"X-Request-ID": "ws-same"}) as socket:
        send(socket, UTTERANCE)
        answer = receive_until_end(socket)
    with server.client() as client:
        body = {"model": "tts-1", **UTTERANCE, "response_format": "pcm", "stream": False}
        response = client.post("/v1/audio/speech", json=body)
    assert response.status_code == 200
    # The same ending as the same request over HTTP (its frame cap may end it with `length`).
    reason = response.headers["X-Finish-Reason"]
    assert answer.events == [{"event": "done", "id": "ws-same-1", "finish_reason": reason, "seed": 5}]
    assert answer.frames >= 1
    assert answer.audio == response.content
    assert decode_pcm16(answer.audio).rms > 1e-3


def test_several_utterances_are_answered_in_order_and_errors_keep_the_connection(
    server: LiveServer, request_log: RecordCollector
) -> None:
    first = {**UTTERANCE, "input": "First of all."}
    second = {**UTTERANCE, "input": "Second comes next.", "seed": 6}
    with ws_connect(server, additional_headers={"X-Request-ID": "ws-order"}) as socket:
        # Sent all at once: answers come back in the order of the messages.
        send(socket, first)
        send(socket, {**UTTERANCE, "voice": "nobody"})
        socket.send("this is not json")
        socket.send(b"\x00\x01")
        send(socket, {**UTTERANCE, "sample_rate": 12345})
        send(socket, {**UTTERANCE, "temperature": 9})
        send(socket, {"voice": "Ryan"})
        send(socket, second)
        answers = [receive_until_end(socket) for _ in range(8)]
    assert answers[0].last["event"] == "done" and answers[0].audio == http_pcm(server, first)
    errors = [a.last for a in answers[1:7]]
    assert all(e["event"] == "error" and a.audio == b"" for e, a in zip(errors, answers[1:7], strict=True))
    assert [e["param"] for e in errors] == ["voice", None, None, "sample_rate", "temperature", "input"]
    assert "nobody" in errors[0]["detail"] and "Vivian" in errors[0]["detail"]
    assert "JSON" in errors[1]["detail"] and "text frames" in errors[2]["detail"]
    assert "24000" in errors[3]["detail"]
    assert answers[7].last["event"] == "done" and answers[7].audio == http_pcm(server, second)
    refused = [r for r in request_log.records if r.getMessage() == "request refused"]
    assert [getattr(r, "param", None) for r in refused if getattr(r, "request_id", None) == "ws-order"] == [
        e["param"] for e in errors
    ]


def test_sample_rate_and_format_are_honoured(server: LiveServer) -> None:
    reference = decode_pcm16(http_pcm(server, UTTERANCE))
    with ws_connect(server) as socket:
        send(socket, {**UTTERANCE, "sample_rate": 16000})
        resampled = decode_pcm16(receive_until_end(socket).audio, sample_rate=16000)
        send(socket, {**UTTERANCE, "response_format": "mp3", "sample_rate": 22050})
        mp3 = decode_av(receive_until_end(socket).audio)
    # The same audio as the HTTP response resampled in one pass (up to int16 rounding).
    expected = soxr.resample(reference.samples, 24_000, 16_000, quality="HQ")
    assert resampled.samples.shape == expected.shape
    assert np.max(np.abs(resampled.samples - expected)) < 1e-3
    assert mp3.sample_rate == 22050
    assert abs(mp3.duration - reference.duration) < 0.1


def test_text_stream_speaks_each_sentence_before_the_text_ends(server: LiveServer) -> None:
    text = "Hello from the model. It streams its answer word by word! Does it work? Yes."
    words = text.split(" ")
    first_sentence_words = 4  # "Hello from the model."
    with ws_connect(server, additional_headers={"X-Request-ID": "ws-text"}) as socket:
        send(socket, {"type": "start", "voice": "alloy", "seed": 3, "max_new_tokens": 32})
        for word in words[: first_sentence_words + 1]:  # the first sentence and the next word
            send(socket, {"type": "delta", "text": word + " "})
        # The first sentence is spoken now, with the rest of the text still unsent.
        before_audio = receive_first_audio(socket)
        assert before_audio == [{"event": "sentence", "index": 0, "text": "Hello from the model."}]
        for word in words[first_sentence_words + 1 :]:
            send(socket, {"type": "delta", "text": word + " "})
        send(socket, {"type": "flush"})
        rest = receive_until_end(socket)
    sentences = [e["text"] for e in [*before_audio, *rest.events] if e["event"] == "sentence"]
    assert rest.last == {
        "event": "done",
        "id": "ws-text-1",
        "finish_reason": "stop",
        "sentences": ["stop"] * len(sentences),
        "seed": 3,
    }
    assert sentences == split_sentences(text)
    assert [e["index"] for e in rest.events if e["event"] == "sentence"] == [1, 2, 3]


def test_text_stream_messages_out_of_place_are_errors(server: LiveServer) -> None:
    with ws_connect(server) as socket:
        send(socket, {"type": "delta", "text": "No stream yet."})
        assert receive_until_end(socket).last["param"] == "type"
        send(socket, {"type": "flush"})
        assert "start" in receive_until_end(socket).last["detail"]
        send(socket, {"type": "start", "voice": "nobody"})
        assert receive_until_end(socket).last["param"] == "voice"
        send(socket, {"type": "start", "voice": "Ryan", "language": "Klingon"})
        assert receive_until_end(socket).last["param"] == "language"
        send(socket, {"type": "begin"})
        assert receive_until_end(socket).last["param"] == "type"
        send(socket, {"type": "start", "voice": "Ryan", "max_new_tokens": 24})
        send(socket, {"type": "start", "voice": "Ryan"})  # a stream is already open
        assert "flush" in receive_until_end(socket).last["detail"]
        send(socket, UTTERANCE)  # so is this: the stream comes first
        assert receive_until_end(socket).last["event"] == "error"
        send(socket, {"type": "delta", "text": "Finally some text."})
        send(socket, {"type": "flush"})
        answer = receive_until_end(socket)
        assert [e["event"] for e in answer.events] == ["sentence", "done"]
        assert len(answer.audio) > 0
        send(socket, {**UTTERANCE, "input": "Still usable."})
        assert receive_until_end(socket).last["event"] == "done"


def test_closing_mid_utterance_stops_the_work(server: LiveServer, request_log: RecordCollector) -> None:
    with ws_connect(server, additional_headers={"X-Request-ID": "ws-gone"}) as socket:
        send(socket, {**UTTERANCE, "input": LONG})
        receive_first_audio(socket)
    line = request_log.wait_for_request("ws-gone-1", timeout=60)
    assert line["status"] == 499
    assert line["endpoint"] == "/v1/audio/speech/ws"
    assert line["segments_done"] < line["segments"]
    wait_until_idle(server)


def test_closing_mid_text_stream_stops_the_work(server: LiveServer, request_log: RecordCollector) -> None:
    with ws_connect(server, additional_headers={"X-Request-ID": "ws-gone-text"}) as socket:
        send(socket, {"type": "start", "voice": "Ryan"})
        send(socket, {"type": "delta", "text": LONG})
        receive_first_audio(socket)
    deadline = time.monotonic() + 60
    while not any(line["status"] == 499 for line in request_log.requests("/v1/audio/speech/ws")):
        assert time.monotonic() < deadline, "the stream's job was not logged as cancelled"
        time.sleep(0.05)
    lines = [line for line in request_log.requests() if line["request_id"].startswith("ws-gone-text-1.")]
    # Sentences were spoken one job each, and none was started after the client left.
    assert [line["status"] for line in lines][-1] == 499
    assert len(lines) < len(split_sentences(LONG))
    wait_until_idle(server)


def test_websocket_requests_are_logged_and_counted(server: LiveServer, request_log: RecordCollector) -> None:
    with ws_connect(server, additional_headers={"X-Request-ID": "ws-log"}) as socket:
        send(socket, {**UTTERANCE, "sample_rate": 8000})
        assert receive_until_end(socket).last["event"] == "done"
    line = request_log.wait_for_request("ws-log-1")
    assert line["status"] == 200 and line["format"] == "pcm" and line["voice"] == "Ryan"
    assert line["segments"] == line["segments_done"] == 1  # two short sentences, generated as one piece
    with server.client() as client:
        metrics = client.get("/metrics").text
    assert 'qwen3_tts_request_seconds_count{endpoint="/v1/audio/speech/ws"}' in metrics


def test_max_frame_size_fits_default_clients(server: LiveServer) -> None:
    with ws_connect(server) as socket:
        send(socket, {**UTTERANCE, "input": "A sentence at a high rate.", "sample_rate": 48000})
        answer = receive_until_end(socket)
    assert answer.last["event"] == "done"
    assert json.dumps(answer.events)  # events are plain JSON
    assert len(answer.audio) <= answer.frames * 64 * 1024


def test_message_types_that_are_not_strings_are_error_events(
    server: LiveServer, request_log: RecordCollector, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR), ws_connect(server) as socket:
        for kind in (["delta"], {"a": 1}, 3, None, True):
            send(socket, {"type": kind, "text": "Hello."})
            error = receive_until_end(socket).last
            if kind is None:  # an absent type: an utterance without `input` and `voice`
                assert error["event"] == "error" and error["param"] in ("input", "voice")
                continue
            assert error["event"] == "error" and error["param"] == "type", error
            assert "start, delta or flush" in error["detail"]
        send(socket, {**UTTERANCE, "input": "Still usable."})
        assert receive_until_end(socket).last["event"] == "done"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.records


def test_abandoned_text_streams_leave_no_pending_task(server: LiveServer) -> None:
    # Twelve complete sentences while the first is held in the engine: the sentence queue
    # fills and the connection waits to hand over the next one when the client leaves.
    text = " ".join(f"Sentence {i} waits its turn." for i in range(12)) + " And"
    with RecordCollector().attached("asyncio", logging.WARNING) as asyncio_log:
        for n in range(3):
            with inference_held(server):
                with ws_connect(server, additional_headers={"X-Request-ID": f"ws-abandon-{n}"}) as socket:
                    send(socket, {"type": "start", "voice": "Ryan", "max_new_tokens": 8})
                    send(socket, {"type": "delta", "text": text})
                    wait_until(lambda: server.health()["queue_depth"] == 1)  # the first sentence's job
                wait_until(lambda: server.health()["queue_depth"] == 0)
        wait_until(lambda: not on_server_loop(server, pending_puts()), timeout=30)
        gc.collect()
    destroyed = [r for r in asyncio_log.records if "destroyed but it is pending" in r.getMessage()]
    assert destroyed == []


async def pending_puts() -> list[str]:
    return [
        repr(task)
        for task in asyncio.all_tasks()
        if not task.done() and getattr(task.get_coro(), "__qualname__", "") == "Queue.put"
    ]
