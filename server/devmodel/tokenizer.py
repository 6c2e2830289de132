"""The text tokenizer of the dev checkpoints: a small, hand-built byte-level BPE.

Built with the `tokenizers` library from a fixed word list, so the same code always produces the
same `tokenizer.json` (no training, no hash-order dependence). It has Qwen2's shape:

- NFC normaliser, then a `Sequence([Split(regex), ByteLevel(use_regex=False)])` pre-tokeniser.
  The sequence shape matters: with `fix_mistral_regex=True` (which `qwen_tts` always passes)
  transformers 4.57.3 replaces `pre_tokenizer[0]` of a local tokenizer whose config.json was saved
  by 4.57.3, and indexing fails unless the pre-tokeniser is a sequence.
- 256 byte tokens (ids 0-255, in byte order), then merges that build common English words.
  The merges for "assistant" come first, so "assistant" is always one token, and no merge
  touches the newline byte. This gives the token counts the package slices prompts by:
  "<|im_start|>assistant\\n" -> 3 tokens and "<|im_end|>\\n<|im_start|>assistant\\n" -> 5.
- Special tokens at the ids the model config names: small ids right after the BPE vocabulary in
  the tiny checkpoint, the released ids (151643-151673) in the full-size one. Ids in between are
  filled with `<|filler_N|>` entries that no merge can produce: a vocabulary with holes works, but
  transformers prints every missing id (a megabyte of warning) each time it loads the tokenizer.

The forced aligner's checkpoint (aligner.py) uses the same BPE with its own special tokens
(`build_aligner_tokenizer`): qwen_asr also loads it with `fix_mistral_regex=True`, so the same
sequence shape is needed there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2TokenizerFast

# Qwen2's pre-tokenisation pattern (the one its tokenizer.json ships with).
QWEN2_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Words whose prefixes become merges, in merge order. "assistant" must stay first.
_SPACED_WORDS = (  # each gets a leading space, as words inside a sentence have
    "the The and of to in is it that this This for you with on be are was as have not we can will a an at by"
    " from or but all one there their what hello Hello world speech voice test server model audio sentence quick"
    " brown fox jumps over lazy dog good morning today time day how your our more about some text"
)
_PLAIN_WORDS = "The This Hello It We ing ed er es ly ion en re st th ou an or al"
_WORDS: tuple[str, ...] = (
    "assistant",
    "user",
    "system",
    *(" " + word for word in _SPACED_WORDS.split()),
    *_PLAIN_WORDS.split(),
)


@dataclass(frozen=True)
class SpecialTokenIds:
    """Ids of the special tokens the package feeds to the talker's text embedding."""

    endoftext: int
    im_start: int
    im_end: int
    tts_pad: int
    tts_bos: int
    tts_eos: int

    def by_name(self) -> dict[str, int]:
        return {
            "<|endoftext|>": self.endoftext,
            "<|im_start|>": self.im_start,
            "<|im_end|>": self.im_end,
            "<|tts_pad|>": self.tts_pad,
            "<|tts_bos|>": self.tts_bos,
            "<|tts_eos|>": self.tts_eos,
        }


RELEASED_SPECIAL_IDS = SpecialTokenIds(
    endoftext=151643, im_start=151644, im_end=151645, tts_pad=151671, tts_bos=151672, tts_eos=151673
)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table, which byte-level BPE vocabularies are written in."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


@cache
def _bpe_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    byte_chars = _bytes_to_unicode()
    vocab = {byte_chars[b]: b for b in range(256)}
    merges: list[tuple[str, str]] = []
    for word in _WORDS:
        chars = "".join(byte_chars[b] for b in word.encode("utf-8"))
        for end in range(2, len(chars) + 1):
            if chars[:end] not in vocab:
                vocab[chars[:end]] = len(vocab)
                merges.append((chars[: end - 1], chars[end - 1]))
    return vocab, merges


def bpe_vocab_size() -> int:
    """Number of ordinary (non-special) tokens: bytes plus merges."""
    return len(_bpe_vocab_and_merges()[0])


def compact_special_ids() -> SpecialTokenIds:
    """Special ids packed right after the BPE vocabulary (the tiny checkpoint's choice)."""
    first = bpe_vocab_size()
    return SpecialTokenIds(*range(first, first + 6))


def _fillers(first: int, special: Mapping[str, int]) -> dict[str, int]:
    """Unreachable placeholder tokens for the ids from `first` to the last special id that no token has."""
    taken = set(special.values())
    return {f"<|filler_{i}|>": i for i in range(first, max(taken)) if i not in taken}


def _backend_tokenizer(special: Mapping[str, int]) -> Tokenizer:
    """The byte-level BPE plus `special` (name -> id), each an atomic special token at its id."""
    vocab, merges = _bpe_vocab_and_merges()
    vocab = {**vocab, **_fillers(len(vocab), special), **special}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    # Already in the vocabulary, so each keeps its id; registering them makes them atomic.
    backend.add_special_tokens([AddedToken(name, special=True, normalized=False) for name in special])
    return backend


def build_text_tokenizer(special: SpecialTokenIds) -> PreTrainedTokenizerFast:
    """A Qwen2TokenizerFast over the hand-built BPE, checked against the package's slicing rules."""
    tokenizer = Qwen2TokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=_backend_tokenizer(special.by_name()),
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=["<|im_start|>", "<|tts_pad|>", "<|tts_bos|>", "<|tts_eos|>"],
    )
    check_prompt_slicing(tokenizer)
    return tokenizer


def check_prompt_slicing(tokenizer: PreTrainedTokenizerFast) -> None:
    """Raise if the tokenizer breaks the package's fixed-position prompt slicing."""
    for text, expected in (("<|im_start|>assistant\n", 3), ("<|im_end|>\n<|im_start|>assistant\n", 5)):
        count = len(tokenizer(text)["input_ids"])
        if count != expected:
            raise RuntimeError(f"dev tokenizer splits {text!r} into {count} tokens, the package needs {expected}")


@dataclass(frozen=True)
class AlignerTokenIds:
    """Ids of the special tokens the forced aligner's prompt is made of (qwen_asr's
    `Qwen3ForceAlignProcessor.encode_timestamp` writes `<|audio_start|><|audio_pad|><|audio_end|>`
    and then each word followed by two `<timestamp>`s), plus the chat markers and the pad token
    the released tokenizer has."""

    endoftext: int
    im_start: int
    im_end: int
    audio_start: int
    audio_end: int
    audio_pad: int
    timestamp: int

    def by_name(self) -> dict[str, int]:
        return {
            "<|endoftext|>": self.endoftext,
            "<|im_start|>": self.im_start,
            "<|im_end|>": self.im_end,
            "<|audio_start|>": self.audio_start,
            "<|audio_end|>": self.audio_end,
            "<|audio_pad|>": self.audio_pad,
            "<timestamp>": self.timestamp,
        }


# The ids of Qwen3-ForcedAligner-0.6B's config (audio_start/end/pad, timestamp_token_id).
RELEASED_ALIGNER_IDS = AlignerTokenIds(
    endoftext=151643,
    im_start=151644,
    im_end=151645,
    audio_start=151669,
    audio_end=151670,
    audio_pad=151676,
    timestamp=151705,
)


def compact_aligner_ids() -> AlignerTokenIds:
    """The aligner's special ids packed right after the BPE vocabulary (the tiny checkpoint's choice)."""
    first = bpe_vocab_size()
    return AlignerTokenIds(*range(first, first + 7))


def build_aligner_tokenizer(special: AlignerTokenIds) -> PreTrainedTokenizerFast:
    """The aligner's Qwen2TokenizerFast over the same hand-built BPE. `Qwen3ASRProcessor` reads
    `tokenizer.audio_token`, `audio_bos_token` and `audio_eos_token`, which transformers sets from
    `extra_special_tokens` (saved in tokenizer_config.json, as the released tokenizer has them)."""
    tokenizer = Qwen2TokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=_backend_tokenizer(special.by_name()),
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=["<|im_start|>", "<|audio_start|>", "<|audio_end|>", "<|audio_pad|>", "<timestamp>"],
        extra_special_tokens={
            "audio_token": "<|audio_pad|>",
            "audio_bos_token": "<|audio_start|>",
            "audio_eos_token": "<|audio_end|>",
        },
    )
    prompt = "<|audio_start|><|audio_pad|><|audio_end|>hello<timestamp><timestamp>"
    ids = tokenizer(prompt)["input_ids"]
    expected = [special.audio_start, special.audio_pad, special.audio_end]
    if ids[:3] != expected or ids[-2:] != [special.timestamp] * 2:
        raise RuntimeError(f"dev aligner tokenizer does not keep the prompt's special tokens atomic: {ids}")
    return tokenizer
