"""Reading input as a script: pause tags in plain text, and the SSML subset (what each
element becomes, what is refused, and hostile documents refused fast with memory flat)."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from server.text.reading import read_script
from server.text.script import Pause, ScriptError, Spoken, Voicing
from server.text.ssml import MAX_DEPTH


def shape(text: str) -> list[object]:
    """A script as plain values: the text read (with its written form when it differs) and pauses."""
    out: list[object] = []
    for item in read_script(text).items:
        if isinstance(item, Pause):
            out.append(item.samples)
        else:
            out.append(item.text if item.written is None else (item.text, item.written))
    return out


@pytest.mark.parametrize(
    ("text", "items"),
    [
        ("Hello [pause:0.7s] world", ["Hello", 16_800, "world"]),
        ("Hello [PAUSE:700MS] world", ["Hello", 16_800, "world"]),
        ("[pause:1s]Hi.", [24_000, "Hi."]),
        ("Hi.[pause:.5s]", ["Hi.", 12_000]),
        ("One.[pause:0.1s][pause:100ms] [pause:0.1s]Two.", ["One.", 2400, 2400, 2400, "Two."]),
        ("A pause of [0.5s] is not a tag.", ["A pause of [0.5s] is not a tag."]),
    ],
)
def test_pause_tags(text: str, items: list[object]) -> None:
    assert shape(text) == items


def test_plain_text_is_one_run_in_the_requests_voicing() -> None:
    script = read_script("Just words. Nothing else.")
    assert script.plain and not script.ssml
    assert read_script("Hi [pause:1s] there").counts.pauses == 1


@pytest.mark.parametrize(
    "text", ["Hi [pause:soon] there", "Hi [pause:1h]", "[pause:11s] Hi", "Hi [pause]", "Hi [pause: 1s]"]
)
def test_malformed_or_overlong_pauses_are_refused(text: str) -> None:
    with pytest.raises(ScriptError):
        read_script(text)


def test_pauses_alone_are_a_script() -> None:
    assert shape("[pause:1s]") == [24_000]
    assert shape('<speak><break time="1s"/></speak>') == [24_000]


def test_pauses_together_are_bounded() -> None:
    with pytest.raises(ScriptError, match="together"):
        read_script("Hi " + "[pause:10s]" * 7)


def test_ssml_elements() -> None:
    text = (
        '<speak version="1.0" xmlns="http://www.w3.org/2001/10/synthesis" xml:lang="en-US"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
        ' xsi:schemaLocation="http://www.w3.org/2001/10/synthesis http://www.w3.org/TR/speech-synthesis11/synthesis.xsd">'
        '<p><s>Visit the <sub alias="World Wide Web">WWW</sub>.</s>'
        '<s>Room <say-as interpret-as="cardinal">12</say-as>.</s></p>'
        '<break time="700ms"/><break strength="weak"/><break/>'
        '<voice name="Ryan"><prosody rate="slow" volume="+6dB">Slowly <mark name="m"/>now.</prosody></voice>'
        '<lang xml:lang="zh-CN">你好</lang></speak>'
    )
    script = read_script(text)
    assert script.ssml
    english = Voicing(language="English")
    assert script.items[:2] == (
        Spoken("Visit the World Wide Web.", english, "Visit the WWW.", (), ((10, 24, 10, 13),)),
        Spoken("Room twelve.", english, "Room 12.", (), ((5, 11, 5, 7),)),
    )
    assert script.items[2:5] == (Pause(16_800), Pause(12_000), Pause(18_000))
    slow = script.items[5]
    assert isinstance(slow, Spoken)
    assert (slow.text, slow.marks) == ("Slowly now.", ((7, "m"),))
    assert (slow.voicing.voice, slow.voicing.rate, round(slow.voicing.gain, 3)) == ("Ryan", 0.75, 1.995)
    assert script.items[6] == Spoken("你好", Voicing(language="Chinese"))
    assert script.counts.pauses == 3 and script.counts.ssml_elements == 13


def test_chinese_say_as_adds_no_spaces() -> None:
    text = (
        '<speak xml:lang="zh">第<say-as interpret-as="cardinal">3</say-as>名，'
        '<say-as interpret-as="date">2024-03-05</say-as></speak>'
    )
    assert shape(text) == [("第三名，二零二四年三月五日", "第3名，2024-03-05")]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('<speak><phoneme alphabet="ipa" ph="x">tomato</phoneme></speak>', "<phoneme>"),
        ('<speak><audio src="http://example.com/a.wav"/>Hi</speak>', "<audio>"),
        ("<speak><emphasis>Hi</emphasis></speak>", "<emphasis>"),
        ("<speak><blink>Hi</blink></speak>", "<blink>"),
        ('<speak><prosody pitch="+2st">Hi</prosody></speak>', "'pitch'"),
        ('<speak><voice gender="female">Hi</voice></speak>', "'gender'"),
        ('<speak><prosody rate="10">Hi</prosody></speak>', "speed of 10"),
        ('<speak><prosody volume="50%">Hi</prosody></speak>', "volume"),
        ('<speak><say-as interpret-as="currency">5</say-as></speak>', "currency"),
        ("<speak>Hi <break time='2 minutes'/></speak>", "break time"),
        ("<speak><sub>WWW</sub></speak>", "needs alias"),
        ('<speak xml:lang="tlh">Hi</speak>', "xml:lang"),
        ("<speak>Hi", "well-formed"),
        ("<speak>Hi <break>there</break></speak>", "is empty"),
        ("<speak><sub alias='x'>a<break/></sub></speak>", "text only"),
    ],
)
def test_what_cannot_be_followed_is_refused_by_name(text: str, named: str) -> None:
    with pytest.raises(ScriptError, match=named.replace("+", r"\+")):
        read_script(text)


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">' for i in range(1, 10))
    + "]><speak>&lol9;</speak>"
)
EXTERNAL = '<?xml version="1.0"?><!DOCTYPE speak [<!ENTITY x SYSTEM "file:///etc/passwd">]><speak>&x;</speak>'
DEEP = "<speak>" + "<s>" * 10_000 + "deep" + "</s>" * 10_000 + "</speak>"


@pytest.mark.parametrize("document", [BILLION_LAUGHS, EXTERNAL, DEEP], ids=["billion-laughs", "external", "deep"])
def test_hostile_documents_are_refused_fast_with_memory_flat(document: str) -> None:
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(ScriptError):
        read_script(document)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # A budget, not a timing claim: a parser that expanded or recursed would take far longer.
    assert elapsed < 1.0
    assert peak < 1_000_000  # bytes: nothing like the document expanded or a tree built


def test_nesting_just_inside_the_limit_is_read() -> None:
    depth = MAX_DEPTH - 1  # speak is the first level
    assert shape("<speak>" + "<s>" * depth + "ok" + "</s>" * depth + "</speak>") == ["ok"]
