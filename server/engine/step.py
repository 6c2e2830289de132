"""One frame of Qwen3-TTS for a batch of sequences, on the package's own modules.

A frame is: the code predictor turns the talker's last hidden state and the sampled
codebook-0 token into codebooks 1..15 (15 small sequential steps, batched over rows); the
16 codes' embeddings are summed (plus the next text embedding) into the talker's next input;
one talker forward over every row at its own position gives the next hidden state and the
logits of the next codebook-0 token.

The talker is called as `talker.model` with explicit positions, never `talker.forward`: that
keeps per-request positions out of the module-level `rope_deltas` the package stores, and
lets rows of different lengths share a step through the slot cache. Every operation mirrors
the package's (same modules, same order, fp32 logits), so at batch 1 the codes equal its
`generate` exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from server.engine.kv import SlotKVCache
from server.engine.sampling import StageBatch, draw


@dataclass(frozen=True)
class Prefilled:
    hidden: torch.Tensor  # [1, 1, H]: the talker's last hidden state
    logits: torch.Tensor  # [1, V] fp32: codebook-0 logits of the first frame
    cache: Any  # the single-row DynamicCache, to copy into a slot


class FrameModel:
    """The talker, its code predictor and the slot cache of one loaded model."""

    def __init__(self, wrapper: Any, slots: int, max_length: int) -> None:
        # transformers is imported with the model package, in the background, not at startup.
        from transformers import DynamicCache

        self._new_cache = DynamicCache
        talker = wrapper.model.talker
        config = wrapper.model.config.talker_config
        self.talker = talker
        self.predictor = talker.code_predictor
        self.device = talker.device
        self.groups = int(config.num_code_groups)
        self.eos = int(config.codec_eos_token_id)
        self.vocab = int(config.vocab_size)
        # Ids below this are codec codes; the top 1024 are control ids, which the package
        # suppresses except end-of-speech.
        self.codebook_size = self.vocab - 1024
        self.suppressed = torch.tensor(
            [i for i in range(self.codebook_size, self.vocab) if i != self.eos], dtype=torch.long, device=self.device
        )
        self.max_length = max_length
        self.cache = SlotKVCache(
            layers=int(config.num_hidden_layers),
            slots=slots,
            kv_heads=int(config.num_key_value_heads),
            max_length=max_length,
            head_dim=int(getattr(config, "head_dim", config.hidden_size // config.num_attention_heads)),
            dtype=talker.dtype,
            device=self.device,
        )
        self._codec_embedding = talker.get_input_embeddings()
        self._predictor_embeddings = self.predictor.model.codec_embedding
        self._predictor_positions = torch.arange(self.groups + 1, device=self.device).unsqueeze(0)
        self._predictor_rotary: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    # ---- talker ----------------------------------------------------------------------

    def prefill(self, embeds: torch.Tensor) -> Prefilled:
        """The prompt through the talker on its own, as the package's first forward runs it."""
        length = embeds.shape[1]
        positions = torch.arange(length, device=self.device).view(1, 1, -1).expand(3, 1, -1)
        out = self.talker.model(
            inputs_embeds=embeds,
            attention_mask=torch.ones(1, length, dtype=torch.long, device=self.device),
            position_ids=positions,
            past_key_values=self._new_cache(),
            use_cache=True,
            cache_position=torch.arange(length, device=self.device),
        )
        hidden = out.last_hidden_state
        logits = self.talker.codec_head(hidden)[:, -1, :].float()
        return Prefilled(hidden=hidden[:, -1:, :], logits=logits, cache=out.past_key_values)

    def decode(self, rows: list[int], at: list[int], embeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One talker step for `rows` (slots) at positions `at` with inputs `embeds` [B, 1, D];
        returns the hidden states [B, 1, H] and fp32 logits [B, V]. The positions arrive from
        the host, so nothing here waits for the device."""
        positions = torch.tensor(at, dtype=torch.long, device=self.device)
        length = max(at) + 1
        self.cache.bind(rows, positions, length)
        # Row r sees its own positions 0..positions[r]; a 4-D mask is used as given.
        visible = torch.arange(length, device=self.device).unsqueeze(0) <= positions.unsqueeze(1)
        out = self.talker.model(
            inputs_embeds=embeds,
            attention_mask=visible[:, None, None, :],
            position_ids=positions.view(1, -1, 1).expand(3, -1, 1),
            past_key_values=self.cache,
            use_cache=True,
            cache_position=positions[:1],
        )
        hidden = out.last_hidden_state
        return hidden, self.talker.codec_head(hidden)[:, -1, :].float()

    # ---- code predictor --------------------------------------------------------------

    def predict(
        self, hidden: torch.Tensor, first: torch.Tensor, stage: StageBatch, generators: list[torch.Generator | None]
    ) -> torch.Tensor:
        """Codebooks 1..15 for each row from the talker's hidden state [B, 1, H] and the row's
        codebook-0 token (long [B]), as the package's nested `code_predictor.generate` samples
        them (no penalty, no suppression). Returns long [B, 15]."""
        inputs = torch.cat((hidden, self._codec_embedding(first.unsqueeze(1))), dim=1)
        cache = self._new_cache()
        codes: list[torch.Tensor] = []
        for step in range(self.groups - 1):
            start = 0 if step == 0 else step + 1
            out = self._predictor_layers(self.predictor.small_to_mtp_projection(inputs), start, cache)
            logits = self.predictor.lm_head[step](out)[:, -1, :].float()
            token = draw(logits, stage, generators)
            codes.append(token)
            inputs = self._predictor_embeddings[step](token.unsqueeze(1))
        return torch.stack(codes, dim=1)

    def _predictor_layers(self, embeds: torch.Tensor, start: int, cache: Any) -> torch.Tensor:
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
        hidden = embeds
        for layer in model.layers[: model.config.num_hidden_layers]:
            hidden = layer(
                hidden,
                attention_mask=None,
                position_ids=positions,
                past_key_values=cache,
                use_cache=True,
                cache_position=positions[0],
                position_embeddings=rotary,
            )[0]
        normed: torch.Tensor = model.norm(hidden)
        return normed

    def frame_embedding(self, first: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
        """The summed embedding of a frame's 16 codes, [B, 1, D] (text not yet added)."""
        parts = [self._codec_embedding(first.unsqueeze(1))]
        parts += [self._predictor_embeddings[i](rest[:, i : i + 1]) for i in range(self.groups - 1)]
        return torch.cat(parts, dim=1).sum(1, keepdim=True)
