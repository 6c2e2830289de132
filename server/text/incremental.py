"""Sentences out of text that arrives in pieces (an LLM's deltas), each released as soon as
it is certainly complete.

Whether "Dr." or "3." or a line break ends a sentence is only known from what follows it
("Dr. Smith", "3.5", a line that continues in lower case), so a sentence is released once
the text after it has begun; the last one waits for `flush()`. The boundaries are exactly
those `split_sentences` finds in the whole text: a cut is taken only where splitting the
two sides separately gives the same sentences as splitting the text at once, so feeding a
text in any pieces yields the same sentences as splitting it whole.
"""

from __future__ import annotations

from server.text.sentences import MAX_SENTENCE_CHARS, split_sentences


class SentenceAccumulator:
    """Buffers deltas; `feed` returns the sentences they completed, `flush` the rest."""

    def __init__(self, max_chars: int = MAX_SENTENCE_CHARS) -> None:
        self.max_chars = max_chars
        self._pending = ""

    @property
    def pending(self) -> str:
        """Text received and not yet released as a sentence."""
        return self._pending

    def feed(self, delta: str) -> list[str]:
        self._pending += delta
        sentences = split_sentences(self._pending, self.max_chars)
        if len(sentences) < 2:
            return []
        cut = self._last_stable_cut(sentences)
        if cut is None:
            return []
        done = split_sentences(self._pending[:cut], self.max_chars)
        self._pending = self._pending[cut:]
        return done

    def flush(self) -> list[str]:
        """Everything still pending, as sentences; the buffer is empty afterwards."""
        sentences = split_sentences(self._pending, self.max_chars)
        self._pending = ""
        return sentences

    def _last_stable_cut(self, sentences: list[str]) -> int | None:
        """The rightmost position that splits the pending text into complete sentences and a
        tail that is the start of the next one. Searched from the end: the tail is short,
        because a cut is taken as soon as the sentence after it begins."""
        text = self._pending
        for cut in range(len(text) - 1, 0, -1):
            tail = split_sentences(text[cut:], self.max_chars)
            if not tail:
                continue
            if len(tail) >= len(sentences):
                return None  # past the first sentence's start: nothing is complete yet
            head_count = len(sentences) - len(tail)
            if sentences[head_count:] == tail and split_sentences(text[:cut], self.max_chars) == sentences[:head_count]:
                return cut
        return None
