"""The WebSocket shares the HTTP body's output fields: one gain per utterance, and the fields
this server cannot honour refused by name in an error event (the connection stays usable)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.audio import decode_pcm16
from tests.support.live_server import LiveServer
from tests.support.ws import receive_until_end, send, ws_connect

UTTERANCE = {"voice": "Ryan", "input": "Half as loud, please.", "seed": 3, "max_new_tokens": 24}


def test_gain_and_refused_fields_on_the_socket(server: LiveServer) -> None:
    with ws_connect(server) as socket:
        send(socket, UTTERANCE)
        plain = decode_pcm16(receive_until_end(socket).audio).samples
        send(socket, {**UTTERANCE, "gain_db": -6.0206})
        quieter = decode_pcm16(receive_until_end(socket).audio).samples
        send(socket, {**UTTERANCE, "volume": 50})
        refused = receive_until_end(socket)
        send(socket, {**UTTERANCE, "volume_multiplier": 0.5, "sample_rate": 16000})
        resampled = receive_until_end(socket)
    np.testing.assert_allclose(quieter, plain * 0.5, atol=2 / 32768)
    assert refused.last["event"] == "error" and refused.last["param"] == "volume"
    assert resampled.last["event"] == "done"
    assert decode_pcm16(resampled.audio, 16000).duration == pytest.approx(plain.shape[0] / 24000, abs=0.01)
