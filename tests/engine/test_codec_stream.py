"""The streaming codec decoder: audio decoded a few frames at a time, concatenated, equals the
decode of the whole code sequence, for every chunk size, past the transformer's window."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from server.engine.codec.batched import PIECE_FRAMES, BatchedCodec, pieces
from server.engine.codec.stream import StreamingDecoder
from tests.support.checkpoints import DevBackend
from tests.support.frame_audit import forbidden_operations

FRAMES = 160  # over twice the codec transformer's window of 72 frames
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def decoder(dev_backend: DevBackend) -> Any:
    """The codec of the session's shared backend (the loop's limits do not reach the codec)."""
    return dev_backend("custom_voice", max_batch=8, max_length=512).codec_decoder


def random_codes(frames: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 2048, (frames, 16), generator=torch.Generator().manual_seed(seed))


def test_dev_codec_keeps_the_released_causal_layout(decoder: Any) -> None:
    """Otherwise equality here would prove nothing about the real codec."""
    config = decoder.config
    assert config.sliding_window == 72
    assert set(config.layer_types) == {"sliding_attention"}
    assert list(config.upsample_rates) == [8, 5, 4, 3]
    assert list(config.upsampling_ratios) == [2, 2]
    assert int(decoder.total_upsample) == 1920
    assert decoder.pre_conv.padding == 2  # kernel 3, left padding only


@pytest.mark.parametrize("chunk", [1, 2, 5, 10, 37])
def test_streamed_audio_equals_the_whole_decode(decoder: Any, chunk: int) -> None:
    codes = random_codes(FRAMES, seed=chunk)
    with torch.inference_mode():
        whole = decoder(codes.T.unsqueeze(0)).clamp(-1, 1)[0, 0]
        stream = StreamingDecoder(decoder)
        parts = [stream.decode(codes[i : i + chunk]) for i in range(0, FRAMES, chunk)]
    streamed = torch.cat(parts)
    assert streamed.shape == whole.shape == (FRAMES * 1920,)
    assert float((streamed - whole).abs().max()) <= TOLERANCE
    assert float(whole.abs().max()) > 0.01  # not silence


def test_a_schedule_of_growing_chunks_equals_the_whole_decode(decoder: Any) -> None:
    codes = random_codes(FRAMES, seed=99)
    sizes = [2, 10, 10, 25]
    with torch.inference_mode():
        whole = decoder(codes.T.unsqueeze(0)).clamp(-1, 1)[0, 0]
        stream = StreamingDecoder(decoder)
        parts, start = [], 0
        while start < FRAMES:
            size = sizes[min(len(parts), len(sizes) - 1)]
            parts.append(stream.decode(codes[start : start + size]))
            start += size
    assert float((torch.cat(parts) - whole).abs().max()) <= TOLERANCE


def test_skipped_reference_frames_leave_the_rest_exact(decoder: Any) -> None:
    """ICL cloning: the reference's codes go through first and only the new audio is kept,
    cut at exactly reference_frames x 1920 samples."""
    codes = random_codes(FRAMES, seed=5)
    reference = 90
    with torch.inference_mode():
        whole = decoder(codes.T.unsqueeze(0)).clamp(-1, 1)[0, 0]
        stream = StreamingDecoder(decoder)
        stream.skip(codes[:reference])
        rest = torch.cat([stream.decode(codes[i : i + 4]) for i in range(reference, FRAMES, 4)])
    assert float((rest - whole[reference * 1920 :]).abs().max()) <= TOLERANCE


def whole_decode(decoder: Any, codes: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return decoder(codes.T.unsqueeze(0))[0, 0]


def test_batched_rows_decode_each_stream_as_its_whole_file(decoder: Any) -> None:
    """Streams decoded together from per-row state (server/engine/codec/batched.py), each on
    its own chunk schedule, rows padded with the scratch row and a row moved midway: every
    stream's audio equals the decode of its whole code sequence. Batched kernels may round
    differently from a lone decode, hence a tolerance (the CPU serves with StreamingDecoder)."""
    schedules = {0: [2, 4, 8, 16, 24, 24, 24, 24, 13], 1: [3, 5, 16, 24, 24, 24, 24, 19], 2: [1, 7, 24, 24, 24, 24, 23]}
    codes = {row: random_codes(sum(plan), seed=row) for row, plan in schedules.items()}
    codec = BatchedCodec(decoder, rows=4)
    audio: dict[int, list[torch.Tensor]] = {row: [] for row in schedules}
    done = dict.fromkeys(schedules, 0)
    where = {row: row for row in schedules}  # stream -> its row now
    with torch.inference_mode():
        for step in range(max(len(plan) for plan in schedules.values())):
            if step == 4:  # stream 0 leaves its row for row 3, as a row moves when another leaves
                codec.move(0, 3)
                where[0] = 3
            for stream, plan in schedules.items():
                if step >= len(plan):
                    continue
                for size in pieces(plan[step]):
                    index = torch.tensor([where[stream], codec.scratch])
                    chunk = codes[stream][done[stream] : done[stream] + size]
                    batch = torch.stack([chunk, torch.zeros_like(chunk)])
                    audio[stream].append(codec.decode(index, batch)[0])
                    done[stream] += size
    for stream in schedules:
        streamed = torch.cat(audio[stream])
        whole = whole_decode(decoder, codes[stream])
        assert streamed.shape == whole.shape
        assert (streamed - whole).abs().max() < TOLERANCE


def test_pieces_cover_every_chunk_size() -> None:
    for frames in range(1, 200):
        found = pieces(frames)
        assert sum(found) == frames and found == sorted(found, reverse=True)
        assert set(found) <= set(PIECE_FRAMES)


def test_the_batched_decode_is_capturable(decoder: Any) -> None:
    """The same proofs as the frame's: nothing forbidden inside (no host sync, no
    data-dependent shape, no tensor from Python data, no cross-device copy) and no graph
    break when torch._dynamo traces it."""
    import torch._dynamo

    codec = BatchedCodec(decoder, rows=4)
    index = torch.tensor([0, 2, codec.scratch])
    codes = random_codes(3 * 8, seed=7).view(3, 8, 16)
    with torch.inference_mode():
        assert forbidden_operations(lambda: codec.decode(index, codes)) == {}
        torch._dynamo.reset()
        explained = torch._dynamo.explain(codec.decode)(index, codes)
        torch._dynamo.reset()
    assert explained.graph_break_count == 0, [str(reason.reason) for reason in explained.break_reasons]
