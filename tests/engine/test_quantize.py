"""QUANTIZE on the real package: int8 weight-only quantizes the talker's linear layers (code
predictor included) and leaves the codec alone, the server speaks with it, and fp8 without a
GPU that has it is a startup error saying so."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from server.engine.slots.quantize import QuantizeUnsupported, linear_weight_bytes
from server.engine.slots.qwen import LoopLimits, QwenBackend
from tests.support.audio import decode_pcm16
from tests.support.live_server import live_server

LIMITS = LoopLimits(max_batch=1, max_length=512)


def test_int8_quantizes_the_talker_and_code_predictor_not_the_codec(custom_voice_dir: Path) -> None:
    # Their own backends: quantizing rewrites the model's weights in place.
    plain = QwenBackend.load(str(custom_voice_dir), "cpu", 1, LIMITS)
    quantized = QwenBackend.load(str(custom_voice_dir), "cpu", 1, LIMITS, quantize="int8")
    try:
        talker, plain_talker = quantized._model.model.talker, plain._model.model.talker
        # fp32 weights become int8 plus a scale per output row: nearly a quarter.
        assert linear_weight_bytes(talker) < 0.3 * linear_weight_bytes(plain_talker)
        linears = [m for m in talker.code_predictor.modules() if isinstance(m, torch.nn.Linear)]
        assert linears and all(type(m.weight).__name__ == "Int8Tensor" for m in linears)
        codec = quantized._model.model.speech_tokenizer.model
        assert all(type(p) is torch.nn.Parameter and p.dtype == torch.float32 for p in codec.parameters())
        # The package's own generate and decode run on the quantized talker.
        with torch.inference_mode():
            wavs, rate = quantized._model.generate_custom_voice(
                text="Quantized weights speak.", speaker="Vivian", language="English", max_new_tokens=12
            )
        assert rate == 24_000 and wavs[0].shape[0] > 0
    finally:
        plain.release()
        quantized.release()


def test_a_server_with_int8_weights_speaks(custom_voice_dir: Path, tmp_path: Path) -> None:
    settings = {"model_id": str(custom_voice_dir), "voices_dir": tmp_path, "quantize": "int8", "max_new_tokens": 32}
    body = {"voice": "Vivian", "input": "Eight bit weights.", "response_format": "pcm", "stream": False}
    with live_server(**settings) as srv, srv.client() as client:
        response = client.post("/v1/audio/speech", json=body)
    assert response.status_code == 200
    assert decode_pcm16(response.content).rms > 1e-3


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine with a GPU may well support fp8")
def test_fp8_without_a_gpu_is_a_startup_error(custom_voice_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(QuantizeUnsupported, match="fp8 needs a CUDA GPU"):
        live_server(model_id=str(custom_voice_dir), voices_dir=tmp_path, quantize="fp8").__enter__()
