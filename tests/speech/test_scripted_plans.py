"""Scripted plans without a server: parts with their own voice, language, speed, gain and
seed; the request log's counts; the output cache key follows what is read."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server.engine.sequence import segment_seed
from server.speech.output_cache import cache_key
from server.speech.planning import SpeechPlan
from server.speech.request_log import RequestLog, SpeechStats
from tests.speech.test_planning import RecordedVoices, planner, request


def plan(text: str, **fields: Any) -> SpeechPlan:
    body = request(input=text, seed=100, **fields)
    return asyncio.run(planner(RecordedVoices()).plan_request(body, "/v1/audio/speech"))


def test_voices_languages_and_prosody_make_parts_with_their_seeds() -> None:
    text = (
        "<speak>One. <voice name='Ryan'><prosody rate='x-fast' volume='-6dB'>Two. Three.</prosody></voice>"
        "<lang xml:lang='de'>Vier.</lang></speak>"
    )
    laid = plan(text, speed=1.5, gain_db=6.0)
    parts = laid.parts
    assert [(p.first, p.job.segments) for p in parts] == [(0, ("One.",)), (1, ("Two.", "Three.")), (3, ("Vier.",))]
    assert [p.speed for p in parts] == [1.5, 2.25, 1.5]
    assert [round(p.gain, 3) for p in parts] == [1.995, 1.0, 1.995]
    assert [p.job.language for p in parts] == ["Auto", "Auto", "German"]  # Latin script: the model decides
    # Segment i draws seed + i across the whole request.
    assert [p.job.seed for p in parts] == [100, segment_seed(100, 1), segment_seed(100, 3)]
    assert laid.segments == ("One.", "Two.", "Three.", "Vier.")


def test_a_rate_beyond_the_speed_range_is_refused() -> None:
    with pytest.raises(Exception, match="speed of 6"):
        plan("<speak><prosody rate='x-fast'>Hi.</prosody></speak>", speed=4.0)


def test_plain_text_plans_as_before() -> None:
    laid = plan("Just words. Nothing else.")
    assert laid.layout is None and laid.rest == () and laid.pause_before(0) == 0


def test_the_log_counts_and_the_cache_key_follows_what_is_read() -> None:
    paused = plan("Hello Nguyen.[pause:0.5s] Bye.", pronunciations=[{"text": "Nguyen", "alias": "Win"}])
    fields = RequestLog(2048).fields(paused, SpeechStats(), 200, 1.0)
    assert (fields["pauses"], fields["pronunciation_hits"]) == (1, 1)
    assert "Nguyen" not in str(fields) and "Win" not in str(fields)
    keys = {
        cache_key(p, "model", streamed=False)
        for p in (
            paused,
            plan("Hello Nguyen.[pause:0.6s] Bye."),
            plan("Hello Nguyen.[pause:0.5s] Bye."),
            plan("Hello Nguyen.[pause:0.5s] Bye.", pronunciations=[{"text": "Nguyen", "alias": "Nwen"}]),
        )
    }
    assert len(keys) == 4
