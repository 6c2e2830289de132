"""The output cache: finished speech responses kept for exact repeats of a request.

Fixed phrases (prompts, menus, notifications) are asked for again and again; an unseeded
request would otherwise cost a full synthesis each time and sound slightly different.
The cache is a least-recently-used map bounded by entries (AUDIO_CACHE_MAX) and by bytes
(AUDIO_CACHE_MAX_BYTES). An entry holds the exact bytes a fresh response sent, so a hit
is byte-for-byte the response that filled it.

The key is everything that changes those bytes: the text as split into sentences and as
read (a script's aliases and renderings, its pauses, each part's voice and prosody), the
model that speaks it, the voice (the speaker, or the saved voice's id), the resolved
language, instructions, speed, sampling fields, the frame cap, the format, the sample rate and gain, and whether the
file was streamed (a streamed WAV, FLAC or MP3 differs from the whole file in its headers).
OpenAI's model names and voice aliases that resolve to the same model and speaker share
entries. Seeded requests are never cached (they are repeatable by themselves).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

import orjson

from server.speech.planning import SpeechPlan


@dataclass(frozen=True)
class CachedAudio:
    """One finished response body and what its headers and log line need."""

    data: bytes
    instructions_ignored: bool
    samples: int  # audio samples at 24 kHz, for the log line and metrics of a hit
    seed: int | None = None  # the seed it was generated with (a hit's X-Seed)


def cache_key(plan: SpeechPlan, model_id: str, streamed: bool) -> str:
    job = plan.job
    fields: dict[str, object] = {
        "model": model_id,
        "slot": job.slot,
        "text": job.segments,
        # Presets by speaker (alloy and Vivian are one voice); saved voices by their id.
        "voice": job.speaker if job.speaker is not None else plan.voice_label,
        "language": job.language,
        "instructions": job.instruct,
        "speed": plan.speed,
        "sampling": job.sampling.describe(),
        "max_new_tokens": job.token_cap,
        "format": plan.format.name,
        "sample_rate": plan.sample_rate,
        "gain": plan.gain,
        # Raw PCM is the same bytes whole or streamed; containers are not.
        "streamed": streamed and plan.format.name != "pcm",
    }
    if plan.layout is not None:
        # A script (pauses, SSML, pronunciations): the text as read, the silences, and each
        # part's voice, language, speed and gain.
        fields["text"] = plan.segments
        fields["pauses"] = plan.layout.pauses
        fields["parts"] = [
            (part.first, part.job.slot, part.voice, part.job.language, part.speed, part.gain) for part in plan.parts
        ]
    return hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()


class OutputCache:
    """LRU of finished responses by key, bounded by entry count and total bytes. Used from
    the event loop only, so it needs no lock."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.bytes = 0
        self._items: OrderedDict[str, CachedAudio] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0 and self.max_bytes > 0

    def fits(self, size: int) -> bool:
        """Whether a response of `size` bytes can be kept at all."""
        return self.enabled and size <= self.max_bytes

    def get(self, key: str) -> CachedAudio | None:
        entry = self._items.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, key: str, entry: CachedAudio) -> bool:
        """Keep `entry`, evicting the least recently used ones to make room; False when it
        is larger than the whole cache may hold."""
        if not self.fits(len(entry.data)):
            return False
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= len(old.data)
        self._items[key] = entry
        self.bytes += len(entry.data)
        while len(self._items) > self.max_entries or self.bytes > self.max_bytes:
            _, evicted = self._items.popitem(last=False)
            self.bytes -= len(evicted.data)
            self.evictions += 1
        return True

    def clear(self) -> int:
        cleared = len(self._items)
        self._items.clear()
        self.bytes = 0
        return cleared

    def stats(self) -> dict[str, int]:
        return {
            "size": len(self._items),
            "max": self.max_entries,
            "bytes": self.bytes,
            "max_bytes": self.max_bytes,
            "hits": self.hits,
            "misses": self.misses,
            "evictions": self.evictions,
        }
