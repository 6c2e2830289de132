"""Pauses, SSML and pronunciations on the speech WebSocket: an utterance is the audio the
HTTP endpoint gives for the same text and seed, and a text stream reads a pause tag whose
deltas cut it anywhere."""

from __future__ import annotations

from typing import Any

from tests.support.live_server import LiveServer
from tests.support.ws import receive_until_end, send, ws_connect

TEXT = "Hello there.[pause:0.5s] Goodbye now."


def http_pcm(server: LiveServer, **fields: Any) -> bytes:
    body = {"input": TEXT, "voice": "Vivian", "response_format": "pcm", "seed": 5, "stream": False, **fields}
    with server.client() as client:
        response = client.post("/v1/audio/speech", json=body)
    assert response.status_code == 200, response.text
    return response.content


def test_an_utterance_with_pauses_and_pronunciations_is_the_http_audio(server: LiveServer) -> None:
    entries = [{"text": "Goodbye", "alias": "Farewell"}]
    with ws_connect(server) as socket:
        send(socket, {"input": TEXT, "voice": "Vivian", "seed": 5, "pronunciations": entries})
        answer = receive_until_end(socket)
        ssml = "<speak>Hello <voice name='Ryan'>there</voice>.</speak>"
        send(socket, {"input": ssml, "voice": "Vivian", "seed": 5})
        voices = receive_until_end(socket)
    assert answer.last["event"] == "done"
    assert answer.audio == http_pcm(server, pronunciations=entries)
    assert voices.last["event"] == "done" and voices.audio


def test_a_text_stream_reads_a_tag_cut_across_deltas(server: LiveServer) -> None:
    with ws_connect(server) as socket:
        send(socket, {"type": "start", "voice": "Vivian", "seed": 5})
        for delta in ("Hello there.[pa", "use:0", ".5s] Good", "bye now."):
            send(socket, {"type": "delta", "text": delta})
        send(socket, {"type": "flush"})
        answer = receive_until_end(socket)
    assert answer.last["event"] == "done", answer.events
    assert answer.audio == http_pcm(server)
