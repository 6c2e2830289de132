"""Prompt embeddings for one piece of text, built exactly as the package's
`Qwen3TTSForConditionalGeneration.generate` builds them for a batch of one (same tensors, same
operations in the same order), for each kind of voice:

- a preset speaker (CustomVoice), optionally after an instruction, with all the text in the
  prompt (the package's default for `generate_custom_voice`, `non_streaming_mode=True`);
- a cloned voice (Base) from a speaker embedding only (x-vector), or in context (ICL) after a
  reference transcript and its codec codes, with the text fed one token per frame (the
  package's default for `generate_voice_clone`, `non_streaming_mode=False`);
- a described voice (VoiceDesign): the description as the instruction and no speaker at all,
  all the text in the prompt, exactly the preset path without its speaker embedding (the
  package's `generate_voice_design`, `non_streaming_mode=True`, passes `speakers=None`).

Each position of the prompt sums a text-track embedding and a codec-track embedding. What the
prompt does not hold, the `trailing` text, is added to the input of each decode step in turn;
past its end every step adds the `tts_pad` embedding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch

from server.engine.device.runtime import runtime_for
from server.engine.errors import InvalidSynthesisInput


@dataclass(frozen=True)
class PieceText:
    """What is spoken and how: the inputs of one generation."""

    text: str
    language: str
    speaker: str | None = None
    instruct: str | None = None
    clone: Any = None  # the package's VoiceClonePromptItem for a cloned voice


@dataclass(frozen=True)
class Prompt:
    embeds: torch.Tensor  # [1, L, D]
    trailing: torch.Tensor  # [1, T, D]
    tts_pad: torch.Tensor  # [1, 1, D]
    input_tokens: int  # text tokens of the piece, as the usage counts them
    ref_code: torch.Tensor | None  # ICL: the reference's codes [T_ref, 16], decoded before the piece

    @property
    def length(self) -> int:
        return int(self.embeds.shape[1])


class PromptBuilder:
    """Builds prompts on one loaded model (inference thread only)."""

    def __init__(self, wrapper: Any, honours_instruct: bool) -> None:
        self._wrapper = wrapper  # the package's Qwen3TTSModel
        self._model = wrapper.model
        self._talker = wrapper.model.talker
        self._config = wrapper.model.config
        self._honours_instruct = honours_instruct

    def build(self, piece: PieceText) -> Prompt:
        try:
            self._wrapper._validate_languages([piece.language])
            if piece.clone is None:
                self._wrapper._validate_speakers([piece.speaker])
        except ValueError as exc:  # the package's own checks, with its messages
            raise InvalidSynthesisInput(str(exc)) from exc
        ids = self._upload(self._host_ids(piece))
        input_id = ids["input"]
        parts: list[torch.Tensor] = []
        if "instruct" in ids:
            parts.append(self._text(ids["instruct"]))
        embeds, trailing, tts_pad, ref_code = self._main(input_id, ids, piece)
        parts.append(embeds)
        return Prompt(
            embeds=torch.cat(parts, dim=1),
            trailing=trailing,
            tts_pad=tts_pad,
            input_tokens=int(input_id[:, 3:-5].shape[-1]),
            ref_code=ref_code,
        )

    # ---- the ids, on the host, then on the device in one copy ---------------------------

    def _tokens(self, text: str) -> list[int]:
        """The package's tokenization (`_tokenize_texts`), kept on the host."""
        ids: list[int] = (
            self._wrapper.processor(text=text, return_tensors="pt", padding=True)["input_ids"].view(-1).tolist()
        )
        return ids

    def _host_ids(self, piece: PieceText) -> dict[str, list[int]]:
        """Every id the prompt embeds, by role, as the package computes them."""
        config = self._config
        tc = config.talker_config
        wrapper = self._wrapper
        input_ids = self._tokens(wrapper._build_assistant_text(piece.text))
        ids = {
            "input": input_ids,
            "specials": [config.tts_bos_token_id, config.tts_eos_token_id, config.tts_pad_token_id],
            "pad_bos": [tc.codec_pad_id, tc.codec_bos_id],
        }
        if piece.clone is None and piece.instruct and self._honours_instruct:
            ids["instruct"] = self._tokens(wrapper._build_instruct_text(piece.instruct))
        language_id = self._language_id(piece)
        if language_id is None:
            ids["think"] = [tc.codec_nothink_id, tc.codec_think_bos_id, tc.codec_think_eos_id]
        else:
            ids["think"] = [tc.codec_think_id, tc.codec_think_bos_id, language_id, tc.codec_think_eos_id]
        if piece.clone is None and piece.speaker:
            ids["speaker"] = [tc.spk_id[piece.speaker.lower()]]
        clone = piece.clone
        if clone is not None and clone.ref_code is not None and clone.icl_mode:
            ids["ref"] = self._tokens(wrapper._build_ref_text(clone.ref_text))
        elif clone is None:
            text_tokens = len(input_ids) - 8  # input_id[:, 3:-5]
            ids["text_pads"] = [tc.codec_pad_id] * (text_tokens + 1)
            ids["bos"] = [tc.codec_bos_id]
        return ids

    def _upload(self, ids: dict[str, list[int]]) -> dict[str, torch.Tensor]:
        """All the ids on the device through one asynchronous copy, as [1, n] views; a
        tensor built from Python data on the device would wait for it, once per call."""
        flat = [token for values in ids.values() for token in values]
        device_ids = runtime_for(self._talker.device).upload(torch.tensor(flat, dtype=torch.long), self._talker.device)
        views: dict[str, torch.Tensor] = {}
        offset = 0
        for role, values in ids.items():
            views[role] = device_ids[offset : offset + len(values)].view(1, -1)
            offset += len(values)
        return views

    # ---- the package's generate(), for one item ---------------------------------------

    def _text(self, ids: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, self._talker.text_projection(self._talker.get_text_embeddings()(ids)))

    def _codec(self, ids: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, self._talker.get_input_embeddings()(ids))

    def _speaker_embed(self, ids: dict[str, torch.Tensor], piece: PieceText) -> torch.Tensor | None:
        clone = piece.clone
        if clone is not None:
            if clone.x_vector_only_mode or clone.icl_mode:
                return cast(torch.Tensor, clone.ref_spk_embedding.to(self._talker.device).to(self._talker.dtype))
            return None
        if "speaker" not in ids:
            return None
        return cast(torch.Tensor, self._talker.get_input_embeddings()(ids["speaker"][0, 0]))

    def _language_id(self, piece: PieceText) -> int | None:
        talker_config = self._config.talker_config
        language = piece.language.lower()
        language_id = None if language == "auto" else talker_config.codec_language_id[language]
        speaker = None if piece.clone is not None else piece.speaker
        if language in ("chinese", "auto") and speaker and talker_config.spk_is_dialect[speaker.lower()] is not False:
            language_id = talker_config.codec_language_id[talker_config.spk_is_dialect[speaker.lower()]]
        return cast("int | None", language_id)

    def _main(
        self, input_id: torch.Tensor, ids: dict[str, torch.Tensor], piece: PieceText
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        speaker_embed = self._speaker_embed(ids, piece)
        tts_bos, tts_eos, tts_pad = self._text(ids["specials"]).chunk(3, dim=1)
        codec_0 = self._codec(ids["think"])
        codec_1 = self._codec(ids["pad_bos"])
        if speaker_embed is None:
            codec = torch.cat([codec_0, codec_1], dim=1)
        else:
            codec = torch.cat([codec_0, speaker_embed.view(1, 1, -1), codec_1], dim=1)
        role = self._text(input_id[:, :3])
        pads_and_bos = torch.cat((tts_pad.expand(-1, codec.shape[1] - 2, -1), tts_bos), dim=1) + codec[:, :-1]
        embeds = torch.cat((role, pads_and_bos), dim=1)

        clone = piece.clone
        if "ref" in ids:
            ref_code = clone.ref_code.to(self._talker.device)
            icl, trailing = self._model.generate_icl_prompt(
                text_id=input_id[:, 3:-5],
                ref_id=ids["ref"][:, 3:-2],
                ref_code=ref_code,
                tts_pad_embed=tts_pad,
                tts_eos_embed=tts_eos,
                non_streaming_mode=False,
            )
            return torch.cat([embeds, icl], dim=1), trailing, tts_pad, ref_code
        first_text = self._text(input_id[:, 3:4]) + codec[:, -1:]
        if clone is not None:
            # Text fed one token per frame (the package's default for cloning).
            trailing = torch.cat((self._text(input_id[:, 4:-5]), tts_eos), dim=1)
            return torch.cat([embeds, first_text], dim=1), trailing, tts_pad, None
        # All the text in the prompt (the package's default for preset speakers).
        text_ids = input_id[:, 3:-5]
        text_part = torch.cat((self._text(text_ids), tts_eos), dim=1) + self._codec(ids["text_pads"])
        bos = tts_pad + self._codec(ids["bos"])
        return torch.cat([embeds, text_part, bos], dim=1), tts_pad, tts_pad, None
