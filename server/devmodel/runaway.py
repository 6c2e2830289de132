"""Dev checkpoints that fail to stop, the ways real Qwen3-TTS checkpoints sometimes do: for
testing the runaway guards (server/engine/frame/guards.py) and the finish reasons.

Built on the stop circuit (stop.py): its FRACTION channel falls as frames accumulate, and the
eos row of the codec head turns that into end-of-speech once the text is spoken. Here the eos
readout is switched off, and instead:

- `endless`: nothing takes its place: the talker babbles random codes until its budget;
- `silent`: one cb0 code, one the codec's encoder gives digital silence, takes the eos row's
  readout: once the text is spoken every frame's cb0 is that quiet code (a near-silent tail,
  like the 0.6B Base model's room tone);
- `loop`: two loud codes take it, and one more reserved channel (ALTERNATE) carries "which of
  the two came last" from the codec embedding of the previous frame to the codec head, so the
  tail alternates A, B, A, B: a period-2 codebook-0 loop.

Nothing outside the released architecture is added: only weights change.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from qwen_tts.core.models import Qwen3TTSForConditionalGeneration

from server.devmodel.stop import BIAS, CODEC_EOS_ID, FRACTION, SLOPE, STOP_FRACTION, silence_channels

DevBehaviour = Literal["stop", "endless", "silent", "loop"]
BEHAVIOURS: tuple[DevBehaviour, ...] = ("stop", "endless", "silent", "loop")

ALTERNATE = 3  # the reserved channel of the loop behaviour
_TAIL_BIAS = 8.0  # how far the steered codes' logits rise above the others once the text is spoken
_ALTERNATE_SHARE = 0.1  # ALTERNATE's magnitude in the codec embedding, as a share of the BIAS level
_ALTERNATE_GAIN = 6.0  # logit margin between the two loop codes


def _off(model: Qwen3TTSForConditionalGeneration) -> None:
    """End-of-speech never becomes likely."""
    head = model.talker.codec_head.weight
    head[CODEC_EOS_ID, :] = 0.0
    head[CODEC_EOS_ID, BIAS] = -1000.0


def _steer(model: Qwen3TTSForConditionalGeneration, code: int) -> None:
    """`code`'s logit reads the stop circuit as eos's did: it wins once the text is spoken."""
    head = model.talker.codec_head.weight
    head[code, :] = 0.0
    head[code, BIAS] = _TAIL_BIAS + SLOPE * STOP_FRACTION
    head[code, FRACTION] = -SLOPE


@torch.no_grad()
def install_behaviour(
    model: Qwen3TTSForConditionalGeneration, behaviour: DevBehaviour, quiet: list[int], loud: list[int]
) -> None:
    """Wire `behaviour` into a model that has the stop circuit. `quiet`: cb0 codes the codec
    encodes silence as; `loud`: codes it never does."""
    if behaviour == "stop":
        return
    _off(model)
    if behaviour == "silent":
        _steer(model, quiet[0])
    elif behaviour == "loop":
        first, second = loud[0], loud[1]
        _steer(model, first)
        _steer(model, second)
        _wire_alternation(model, first, second)


def _wire_alternation(model: Qwen3TTSForConditionalGeneration, first: int, second: int) -> None:
    """The previous frame's cb0 embedding writes +a (first) or -a (second) into ALTERNATE; the
    final norm passes it on; the codec head favours the other code."""
    talker = model.talker
    hidden = int(talker.config.hidden_size)
    level = 2.0 * math.sqrt(hidden)  # the BIAS channel's constant (stop.py's K)
    silence_channels(model, [ALTERNATE])
    projection = talker.text_projection.linear_fc2
    projection.weight[ALTERNATE, :] = 0.0
    projection.bias[ALTERNATE] = 0.0
    embedding = talker.model.codec_embedding.weight
    embedding[first, ALTERNATE] = _ALTERNATE_SHARE * level
    embedding[second, ALTERNATE] = -_ALTERNATE_SHARE * level
    # After the final RMSNorm (dominated by BIAS) the channel is about +-share*sqrt(hidden).
    talker.model.norm.weight[ALTERNATE] = 1.0 / (_ALTERNATE_SHARE * math.sqrt(hidden))
    head = talker.codec_head.weight
    head[first, ALTERNATE] = -_ALTERNATE_GAIN
    head[second, ALTERNATE] = _ALTERNATE_GAIN


def quiet_and_loud_codes(codec: torch.nn.Module, dbfs: float = -50.0) -> tuple[list[int], list[int]]:
    """The cb0 codes the dev codec's encoder gives silence and quiet noise, and the lowest
    codes it never gives them."""
    from server.engine.slots.quiet_codes import quiet_audio

    quiet: set[int] = set()
    with torch.inference_mode():
        for audio in quiet_audio(dbfs):
            values = torch.from_numpy(np.ascontiguousarray(audio)).unsqueeze(0)
            mask = torch.ones_like(values, dtype=torch.long)
            for codes in codec.encode(values, mask, return_dict=True).audio_codes:  # type: ignore[operator]
                quiet.update(int(c) for c in codes[:, 0])
    loud = [code for code in range(64) if code not in quiet][:2]
    return sorted(quiet), loud
