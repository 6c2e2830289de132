"""SRT and WebVTT files from timed segments, read back by parser libraries."""

from __future__ import annotations

import html
import io
import re
from datetime import timedelta

import srt
import webvtt

from server.speech.subtitles import render_subtitles, word_positions
from server.speech.timestamps import SegmentWords, Word

SEGMENTS = [
    SegmentWords(0, "Hello,  world!", 0.0, 1.5, (Word("Hello", 0.08, 0.5), Word("world", 0.64, 1.2))),
    SegmentWords(
        1,
        "It's 3 <b>&</b> more.",
        1.5,
        3.25,
        (Word("It's", 1.6, 1.9), Word("3", 2.0, 2.2), Word("b", 2.3, 2.4), Word("b", 2.5, 2.6), Word("more", 2.7, 3.1)),
    ),
    SegmentWords(2, "你好", 3.25, 4.0, (Word("你", 3.3, 3.5), Word("好", 3.5, 3.9))),
    SegmentWords(3, "Lost words.", 4.0, 5.0, (), error="the aligner failed"),
]


def test_srt_has_one_cue_per_segment_spanning_its_audio() -> None:
    cues = list(srt.parse(render_subtitles(SEGMENTS, "srt")))
    assert [cue.index for cue in cues] == [1, 2, 3, 4]
    assert [(cue.start, cue.end) for cue in cues] == [
        (timedelta(seconds=0), timedelta(seconds=1.5)),
        (timedelta(seconds=1.5), timedelta(seconds=3.25)),
        (timedelta(seconds=3.25), timedelta(seconds=4)),
        (timedelta(seconds=4), timedelta(seconds=5)),
    ]
    assert [cue.content for cue in cues] == ["Hello, world!", "It's 3 <b>&</b> more.", "你好", "Lost words."]


def test_vtt_cues_carry_each_word_start_as_a_timestamp_tag() -> None:
    text = render_subtitles(SEGMENTS, "vtt")
    captions = webvtt.from_buffer(io.StringIO(text)).captions
    assert [(c.start, c.end) for c in captions] == [
        ("00:00:00.000", "00:00:01.500"),
        ("00:00:01.500", "00:00:03.250"),
        ("00:00:03.250", "00:00:04.000"),
        ("00:00:04.000", "00:00:05.000"),
    ]
    raw = [c.raw_text for c in captions]
    assert raw[0] == "<00:00:00.080>Hello, <00:00:00.640>world!"
    # Markup characters of the input are escaped; every word start is tagged, in order.
    assert (
        raw[1]
        == "<00:00:01.600>It's <00:00:02.000>3 &lt;<00:00:02.300>b&gt;&amp;&lt;/<00:00:02.500>b&gt; <00:00:02.700>more."
    )
    assert raw[2] == "<00:00:03.300>你<00:00:03.500>好"
    assert raw[3] == "Lost words."
    # What a player shows (tags stripped, entities read) is the text as written.
    assert [html.unescape(c.text) for c in captions][:3] == ["Hello, world!", "It's 3 <b>&</b> more.", "你好"]


def test_vtt_tags_stay_strictly_inside_their_cue_and_increase() -> None:
    for caption in webvtt.from_buffer(io.StringIO(render_subtitles(SEGMENTS, "vtt"))).captions:
        tags = re.findall(r"<(\d\d:\d\d:\d\d\.\d{3})>", caption.raw_text)
        assert tags == sorted(set(tags))
        assert all(caption.start < tag < caption.end for tag in tags)


def test_word_positions_follow_the_text() -> None:
    words = [Word("doesnt", 0, 0), Word("3", 0, 0), Word("好", 0, 0)]
    assert word_positions("Doesn't it? doesn't 3 你好", words) == [12, 20, 23]
    assert word_positions("nothing here", [Word("absent", 0, 0)]) is None
