"""A script's layout: segments with the silence before each, their written text, marks and
replaced spans; words read back as the words written."""

from __future__ import annotations

from server.speech.scripted import lay_out
from server.speech.spoken_words import mark_times, written_units
from server.text.reading import read_script


def test_pauses_go_before_the_segment_that_follows_them() -> None:
    layout = lay_out(read_script("[pause:0.5s]One. Two.[pause:1s][pause:1s]Three.[pause:0.25s]"), per_sentence=True)
    assert [s.text for s in layout.segments] == ["One.", "Two.", "Three."]
    assert layout.pauses == (12_000, 0, 48_000, 6_000)


def test_runs_with_one_voicing_are_one_group() -> None:
    text = "<speak>One. <voice name='Ryan'>Two. Three.</voice><break/>Four.</speak>"
    groups = [
        (first, [s.text for s in segments])
        for first, segments in lay_out(read_script(text), per_sentence=True).groups()
    ]
    assert groups == [(0, ["One."]), (1, ["Two.", "Three."]), (3, ["Four."])]


def test_written_text_and_marks_follow_each_segment() -> None:
    text = (
        '<speak>Meet <sub alias="Doctor">Dr.</sub> Who. He lives at <say-as interpret-as="cardinal">42</say-as>'
        ' Elm Street. <mark name="end"/>Bye.</speak>'
    )
    segments = lay_out(read_script(text), per_sentence=True).segments
    assert [(s.text, s.written) for s in segments] == [
        ("Meet Doctor Who.", "Meet Dr. Who."),
        ("He lives at forty-two Elm Street.", "He lives at 42 Elm Street."),
        ("Bye.", "Bye."),
    ]
    assert segments[1].replaced == ((12, 21, 12, 14),)
    assert segments[2].marks == ((0, "end"),)


def test_spoken_words_map_back_to_written_words() -> None:
    spoken, written = "Visit the World Wide Web today.", "Visit the WWW today."
    words = [("Visit", 0.0, 0.2), ("the", 0.2, 0.3), ("World", 0.3, 0.5), ("Wide", 0.5, 0.7), ("Web", 0.7, 0.9)]
    words.append(("today", 0.9, 1.2))
    assert written_units(spoken, written, [(10, 24, 10, 13)], words) == [
        ("Visit", 0.0, 0.2),
        ("the", 0.2, 0.3),
        ("WWW", 0.3, 0.9),
        ("today", 0.9, 1.2),
    ]
    assert mark_times(spoken, [(10, "web"), (31, "end")], words, 1.5) == [("web", 0.3), ("end", 1.5)]
