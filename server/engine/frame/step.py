"""One frame of Qwen3-TTS for a batch of sequences, as two functions over static buffers.

(B) `predictor_frame`: the code predictor turns each row's last talker hidden state and its
codebook-0 token into codebooks 1..15 (15 unrolled steps with their draws, over a static
per-frame key/value buffer of 17 positions instead of a DynamicCache), and sums the 16 codes'
embeddings into the talker's next input.
(A) `talker_step`: that input plus the row's next text embedding goes through the talker's
layers at each row's own position (the slot cache, a mask built on the device), then the
codec head, the logits processors and the draw of the next codebook-0 token; the row's state
advances and its end flag is set.

Both read and write only the buffers of server/engine/frame/device_batch.py and of the caches, over
the first `bucket` rows: padded and paused rows run too but leave their state as it was. Every
shape depends on (bucket, length bucket, candidates) alone, and nothing reads a value back to
the host, so on CUDA each is captured once per bucket and replayed (server/engine/frame/graphs.py);
on the CPU the same functions run eagerly, which is what the tests check.

The talker's layers are called directly with explicit positions, never `talker.forward`: that
keeps per-request positions out of the module-level `rope_deltas` the package stores. Every
operation mirrors the package's (same modules, same order, fp32 logits), so greedy codes
equal its `generate` exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from server.engine.device.runtime import runtime_for
from server.engine.frame.attention import use_grouped_decode
from server.engine.frame.counter_rng import keys as counter_keys
from server.engine.frame.device_batch import DeviceBatch
from server.engine.frame.guards import GuardBank
from server.engine.frame.kv import PredictorKVCache, SlotKVCache
from server.engine.frame.reasons import GUARD_REASONS, EndReason
from server.engine.frame.sampling import StageTensors, kth_index, process_first_codebook, sample, token_mask

# Batch sizes a frame runs at: a batch of n rows runs at the smallest bucket >= n.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128)
# Key lengths the talker's attention reads: the smallest bucket past every running row's position.
LENGTH_BUCKETS = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768)


def buckets_up_to(limit: int, steps: tuple[int, ...]) -> tuple[int, ...]:
    """The steps below `limit`, then `limit` itself."""
    return (*(step for step in steps if step < limit), limit)


def bucket_for(value: int, buckets: tuple[int, ...]) -> int:
    for bucket in buckets:
        if value <= bucket:
            return bucket
    raise ValueError(f"{value} is past the largest bucket {buckets[-1]}")


def end_reason(
    budget_hit: torch.Tensor, spoke_eos: torch.Tensor, extra: list[tuple[int, torch.Tensor]]
) -> torch.Tensor:
    """Why each row's segment ends after this frame (long [B], 0: it goes on), decided on the
    device. This is the one place per-row stop conditions meet: the token budget first (the
    package stops before it samples past it), then end of speech, then each further
    condition in `extra` ((reason code, bool [B]) pairs, pure tensor functions of the batch
    state) for rows nothing else has ended."""
    reason = torch.where(spoke_eos, EndReason.END_OF_SPEECH, EndReason.GOES_ON)
    reason = torch.where(budget_hit, EndReason.TOKEN_BUDGET, reason)
    for code, condition in extra:
        reason = torch.where(condition & (reason == 0), code, reason)
    return reason


@dataclass(frozen=True)
class FrameShape:
    """What a frame's shapes depend on: its batch bucket, the talker's length bucket, how many
    candidates each stage's sampler looks at and whether some row uses top-p. Captured graphs
    use every id as a candidate and top-p on, whatever the batch's settings."""

    bucket: int
    length: int
    talker_candidates: int
    predictor_candidates: int
    talker_top_p: bool = True
    predictor_top_p: bool = True


@dataclass(frozen=True)
class Prefilled:
    hidden: torch.Tensor  # [1, 1, H]: the talker's last hidden state
    logits: torch.Tensor  # [1, V] fp32: codebook-0 logits of the first frame
    cache: Any  # the DynamicCache of the prefill, to copy into a slot
    row: int = 0  # this prompt's row of `cache` (several prompts prefilled together)


class FrameModel:
    """The talker, its code predictor, their caches and the batch's device state of one
    loaded model."""

    def __init__(self, wrapper: Any, slots: int, max_length: int) -> None:
        # transformers is imported with the model package, in the background, not at startup.
        from transformers import DynamicCache

        self._new_cache = DynamicCache
        talker = wrapper.model.talker
        config = wrapper.model.config.talker_config
        self.talker = talker
        self.predictor = talker.code_predictor
        self.device = talker.device
        if runtime_for(self.device).asynchronous:
            # On a GPU the masked decode step would repeat K/V to every head in every layer
            # (server/engine/frame/attention.py); the CPU keeps transformers' path as it is.
            use_grouped_decode(talker)
        self.groups = int(config.num_code_groups)
        self.eos = int(config.codec_eos_token_id)
        self.vocab = int(config.vocab_size)
        self.predictor_vocab = int(self.predictor.config.vocab_size)
        # Ids below this are codec codes; the top 1024 are control ids, which the package
        # suppresses except end-of-speech.
        self.codebook_size = self.vocab - 1024
        self.eos_mask = token_mask(self.vocab, [self.eos], self.device)
        self.suppressed_mask = token_mask(
            self.vocab, [i for i in range(self.codebook_size, self.vocab) if i != self.eos], self.device
        )
        self.max_length = max_length
        self.slots = slots
        self.batch_buckets = buckets_up_to(slots, BATCH_BUCKETS)
        self.length_buckets = buckets_up_to(max_length, LENGTH_BUCKETS)
        head_dim = int(getattr(config, "head_dim", config.hidden_size // config.num_attention_heads))
        self.cache = SlotKVCache(
            layers=int(config.num_hidden_layers),
            slots=slots,
            kv_heads=int(config.num_key_value_heads),
            max_length=max_length,
            head_dim=head_dim,
            dtype=talker.dtype,
            device=self.device,
        )
        predictor_config = self.predictor.model.config
        self.predictor_cache = PredictorKVCache(
            layers=int(predictor_config.num_hidden_layers),
            rows=slots,
            kv_heads=int(predictor_config.num_key_value_heads),
            length=self.groups + 1,
            head_dim=int(
                getattr(
                    predictor_config, "head_dim", predictor_config.hidden_size // predictor_config.num_attention_heads
                )
            ),
            dtype=talker.dtype,
            device=self.device,
        )
        embed_size = int(talker.get_input_embeddings().embedding_dim)
        self.state = DeviceBatch(
            rows=slots,
            hidden_size=int(config.hidden_size),
            embed_size=embed_size,
            vocab=self.vocab,
            groups=self.groups,
            text_length=max_length,
            dtype=talker.dtype,
            device=self.device,
        )
        self.guards: GuardBank | None = None  # the runaway guards, once installed at load
        self._codec_embedding = talker.get_input_embeddings()
        self._predictor_embeddings = self.predictor.model.codec_embedding
        self._predictor_positions = torch.arange(self.groups + 1, device=self.device).unsqueeze(0)
        self._predictor_rotary: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self._key_positions = torch.arange(max_length, device=self.device)

    # ---- joining (outside the frame) -------------------------------------------------

    def prefill(self, embeds: torch.Tensor) -> Prefilled:
        """The prompt through the talker on its own, as the package's first forward runs it."""
        return self.prefill_many([embeds])[0]

    def prefill_many(self, prompts: list[torch.Tensor]) -> list[Prefilled]:
        """Prompts through the talker in one forward, right-padded to the longest (a single
        prompt is not padded at all): attention is causal, so no real position sees the
        padding after it, and each prompt's last hidden state, logits and first positions of
        the cache are its own. No attention mask: unpadded causal attention is what the
        package's all-ones mask also comes to, but only after reading it back to the host."""
        lengths = [int(embeds.shape[1]) for embeds in prompts]
        longest = max(lengths)
        padded = torch.cat([F.pad(embeds, (0, 0, 0, longest - embeds.shape[1])) for embeds in prompts])
        positions = torch.arange(longest, device=self.device).view(1, 1, -1).expand(3, len(prompts), -1)
        out = self.talker.model(
            inputs_embeds=padded,
            attention_mask=None,
            position_ids=positions,
            past_key_values=self._new_cache(),
            use_cache=True,
            cache_position=torch.arange(longest, device=self.device),
        )
        hidden = out.last_hidden_state
        logits = self.talker.codec_head(hidden).float()
        return [
            Prefilled(
                hidden=hidden[row : row + 1, length - 1 : length, :],
                logits=logits[row : row + 1, length - 1, :],
                cache=out.past_key_values,
                row=row,
            )
            for row, length in enumerate(lengths)
        ]

    def first_token(
        self, logits: torch.Tensor, stage: StageTensors, penalty: float, seed: int, segment: int
    ) -> torch.Tensor:
        """A newcomer's first codebook-0 token from its prefill logits (frame 0), by the same
        processors and draw as (A). Returns long [1]."""
        nothing_seen = torch.zeros(1, self.vocab, dtype=torch.bool, device=self.device)
        penalties = torch.full((1, 1), penalty, dtype=torch.float32, device=self.device)
        zero = torch.zeros(1, dtype=torch.long, device=self.device)
        processed = process_first_codebook(logits, nothing_seen, penalties, zero, self.eos_mask, self.suppressed_mask)
        key = int(counter_keys(np.asarray([seed]), np.asarray([segment]), np.asarray([0]), np.asarray([0]))[0])
        return sample(processed, stage, torch.full_like(zero, key), self.vocab)

    # ---- the frame -------------------------------------------------------------------

    def predictor_frame(self, shape: FrameShape) -> None:
        """(B): codebooks 1..15 for the bucket's rows and the frame's summed code embedding,
        as the package's nested `code_predictor.generate` samples them (no penalty, no
        suppression). Writes `out[:, :16]` and `frame_embeds`."""
        state = self.state
        bucket, candidates = shape.bucket, shape.predictor_candidates
        token = state.token[:bucket]
        keys = state.draw_keys[:bucket]
        stage = state.predictor.rows(bucket)
        kth = kth_index(stage, candidates)
        first = self._codec_embedding(token.unsqueeze(1))
        inputs = torch.cat((state.hidden[:bucket], first), dim=1)
        codes = [token]
        embeddings = [first]
        for step in range(self.groups - 1):
            start = 0 if step == 0 else step + 1
            hidden = self._predictor_layers(self.predictor.small_to_mtp_projection(inputs), start, bucket)
            logits = self.predictor.lm_head[step](hidden)[:, -1, :].float()
            drawn = sample(logits, stage, keys[:, step + 1], candidates, shape.predictor_top_p, kth)
            codes.append(drawn)
            inputs = self._predictor_embeddings[step](drawn.unsqueeze(1))
            embeddings.append(inputs)
        state.frame_embeds[:bucket].copy_(torch.cat(embeddings, dim=1).sum(1, keepdim=True))
        state.codes_out[:bucket].copy_(torch.stack(codes, dim=1))

    def _predictor_layers(self, embeds: torch.Tensor, start: int, bucket: int) -> torch.Tensor:
        """The code predictor's decoder layers and final norm, as its model's forward runs them
        under `generate` (no mask: causal for the 2-token prefill, nothing to hide after), with
        the rotary embeddings of its 17 positions computed once rather than on every call."""
        model = self.predictor.model
        length = embeds.shape[1]
        positions = self._predictor_positions[:, start : start + length]
        rotary = self._predictor_rotary.get((start, length))
        if rotary is None:
            rotary = model.rotary_emb(embeds, positions)
            self._predictor_rotary[(start, length)] = rotary
        self.predictor_cache.bind(bucket, start)
        hidden = embeds
        for layer in model.layers[: model.config.num_hidden_layers]:
            hidden = layer(
                hidden,
                attention_mask=None,
                position_ids=positions,
                past_key_values=self.predictor_cache,
                use_cache=True,
                cache_position=positions[0],
                position_embeddings=rotary,
            )[0]
        normed: torch.Tensor = model.norm(hidden)
        return normed

    def talker_step(self, shape: FrameShape) -> None:
        """(A): the talker's decode step for the bucket's rows, each at its own position, then
        the logits processors and the draw of the next codebook-0 token. Active rows advance
        (position, text, token, hidden state, seen tokens); `out[:, 16]` gets each row's end
        reason."""
        state = self.state
        bucket, length = shape.bucket, shape.length
        fed = state.fed[:bucket]
        text_length = state.trailing_length[:bucket]
        index = torch.minimum(fed, (text_length - 1).clamp(min=0)).view(bucket, 1, 1)
        text = state.trailing[:bucket].gather(1, index.expand(bucket, 1, state.trailing.shape[-1]))
        text = torch.where((fed < text_length).view(bucket, 1, 1), text, state.tts_pad[:bucket])
        embeds = state.frame_embeds[:bucket] + text
        positions = state.position[:bucket].clamp(max=self.max_length - 1)
        self.cache.bind(bucket, positions, length)
        # Row r sees its own positions 0..positions[r]; a 4-D mask is used as given.
        visible = self._key_positions[:length].unsqueeze(0) <= positions.unsqueeze(1)
        position_ids = positions.view(1, bucket, 1).expand(3, bucket, 1)
        model = self.talker.model
        rotary = model.rotary_emb(embeds, position_ids)
        hidden = embeds
        for layer in model.layers:
            hidden = layer(
                hidden,
                attention_mask=visible[:, None, None, :],
                position_ids=position_ids[0],
                past_key_values=self.cache,
                use_cache=True,
                cache_position=positions,
                position_embeddings=rotary,
            )[0]
        hidden = model.norm(hidden)
        logits = self.talker.codec_head(hidden)[:, -1, :].float()
        generated = state.generated[:bucket]
        processed = process_first_codebook(
            logits, state.seen[:bucket], state.penalty[:bucket], generated, self.eos_mask, self.suppressed_mask
        )
        key = state.draw_keys[:bucket, 0]
        token = sample(processed, state.talker.rows(bucket), key, shape.talker_candidates, shape.talker_top_p)
        active = state.runs[:bucket] != 0
        # The package stops after sampling `budget` tokens; the last one never gets a frame.
        budget_hit = generated + 1 >= state.budget[:bucket]
        extra, trim = self.extra_stops(bucket, token, fed + 1 >= text_length, active)
        reason = end_reason(budget_hit, token == self.eos, extra)
        advance = active & ~budget_hit
        state.reason_out[:bucket].copy_(torch.where(active, reason, EndReason.GOES_ON))
        state.trim_out[:bucket].copy_(torch.where(active & (reason >= EndReason.SILENCE_GUARD), trim, 0))
        state.hidden[:bucket].copy_(torch.where(advance.view(bucket, 1, 1), hidden, state.hidden[:bucket]))
        state.token[:bucket].copy_(torch.where(advance, token, state.token[:bucket]))
        step = advance.long()
        state.position[:bucket].add_(step)
        state.fed[:bucket].add_(step)
        state.generated[:bucket].add_(step)
        seen = state.seen[:bucket]
        column = token.unsqueeze(1)
        seen.scatter_(1, column, seen.gather(1, column) | advance.unsqueeze(1))

    def install_guards(self, guards: GuardBank) -> None:
        """The runaway guards' per-row state, allocated at load beside the batch's (before any
        capture: their tensors are static buffers too)."""
        self.guards = guards

    def extra_stops(
        self, bucket: int, token: torch.Tensor, text_done: torch.Tensor, active: torch.Tensor
    ) -> tuple[list[tuple[int, torch.Tensor]], torch.Tensor]:
        """Further per-row stop conditions for `end_reason`, as (reason code, bool [bucket])
        pairs, and the frames each would trim: the runaway guards over the new codebook-0
        `token`, for rows whose text was all fed before it (`text_done`). Pure tensor
        operations on the device; only `active` rows' guard state advances."""
        guards = self.guards
        if guards is None or not guards.active:
            return [], torch.zeros_like(token)
        verdict, trim = guards.frame(bucket, token, text_done, active)
        # The token that tripped a guard never becomes a frame: the frames before it are trimmed.
        trim = (trim - 1).clamp(min=0)
        return [(reason, verdict == reason) for reason in GUARD_REASONS], trim
