"""How a job's body becomes segments: paragraphs, Markdown chapters, items, speaker turns and
the pauses between them; and the limits checked before anything is stored."""

from __future__ import annotations

from typing import Any

import pytest

from server.errors import APIError
from server.jobs.inputs import JobRequest, chapter_starts, paragraphs, plan_segments

LIMIT = 2 * 1024 * 1024


def planned(**body: Any) -> list[Any]:
    return plan_segments(JobRequest.model_validate({"voice": "Ryan", **body}), LIMIT)


def test_markdown_headings_start_chapters_and_marks_are_read_as_text() -> None:
    text = (
        "Before any heading.\n\n# Chapter *One*\n\nSome **bold** text with [a link](http://x).\n\n"
        "## Two ##\n\n- An item."
    )
    assert paragraphs(text, markdown=True) == [
        (None, "Before any heading."),
        ("Chapter One", "Some bold text with a link."),
        ("Two", "An item."),
    ]
    segments = planned(input=text, chapter_pause_ms=1000, paragraph_pause_ms=300)
    assert [s.chapter for s in segments] == [None, "Chapter One", "Two"]
    assert [s.pause_after_ms for s in segments] == [1000, 1000, 0]
    assert chapter_starts(segments) == [(0, None), (1, "Chapter One"), (2, "Two")]


def test_plain_text_keeps_its_hashes_and_has_no_chapters() -> None:
    segments = planned(input="# not a heading\n\nSecond paragraph.", input_format="text", paragraph_pause_ms=250)
    assert [s.text for s in segments] == ["# not a heading", "Second paragraph."]
    assert [s.pause_after_ms for s in segments] == [250, 0]
    assert chapter_starts(segments) == []


def test_soft_wrapped_lines_are_one_paragraph_and_sentences_are_cut_as_on_the_speech_endpoint() -> None:
    long = " ".join(f"Sentence {i} has a few words in it." for i in range(40))
    segments = planned(input=long.replace(". ", ".\n"))
    assert len(segments) > 1  # cut into pieces of a bounded size
    assert " ".join(s.text for s in segments) == long
    assert {s.pause_after_ms for s in segments[:-1]} == {0}  # no pause inside a paragraph


def test_items_carry_their_own_voice_instructions_language_and_chapter() -> None:
    segments = planned(
        inputs=[
            {"input": "First item.", "chapter": "Intro", "voice": "Vivian", "language": "English"},
            {"input": "Second item.", "instructions": "Whisper."},
        ],
        instructions="Calmly.",
        item_pause_ms=123,
    )
    assert [(s.voice, s.instructions, s.language, s.chapter) for s in segments] == [
        ("Vivian", "Calmly.", "English", "Intro"),
        ("Ryan", "Whisper.", None, None),
    ]
    assert [s.pause_after_ms for s in segments] == [123, 0]


def test_speaker_tags_alternate_voices_and_untagged_lines_continue_the_turn() -> None:
    text = (
        "Narrator line first.\nAlice: Hello Bob.\nBob: Hi Alice.\nstill Bob.\n"
        "# Later\nAlice: Bye.\nNobody: is not a speaker."
    )
    segments = planned(input=text, speakers={"Alice": "Vivian", "Bob": "Aiden"}, item_pause_ms=50)
    assert [(s.voice, s.text) for s in segments] == [
        ("Ryan", "Narrator line first."),
        ("Vivian", "Hello Bob."),
        ("Aiden", "Hi Alice. still Bob."),
        ("Vivian", "Bye. Nobody: is not a speaker."),
    ]
    assert segments[3].chapter == "Later"
    assert [s.pause_after_ms for s in segments] == [50, 50, 1500, 0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "either input"),
        ({"input": "a", "inputs": [{"input": "b"}]}, "either input"),
        ({"inputs": [{"input": "b"}], "speakers": {"A": "Ryan"}}, "speakers tags lines of input"),
        ({"inputs": [{"input": "b", "volume": 3}]}, "Extra inputs"),
    ],
)
def test_a_body_without_one_clear_input_is_refused(body: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JobRequest.model_validate({"voice": "Ryan", **body})


def test_the_size_limit_is_a_413_naming_the_field() -> None:
    request = JobRequest.model_validate({"voice": "Ryan", "input": "é" * 600})
    with pytest.raises(APIError) as refused:
        plan_segments(request, 1024)
    assert refused.value.status == 413
    assert refused.value.param == "input"
    assert "1200 bytes" in refused.value.message


def test_text_with_nothing_to_speak_is_a_400() -> None:
    with pytest.raises(APIError) as refused:
        planned(input="# Only a heading\n\n---\n")
    assert refused.value.status == 400
