"""The Wyoming port on the live server, driven by the `wyoming` package's own async client as
Home Assistant's integration uses it: describe, one-shot synthesis, streaming synthesis
with text cut anywhere, errors that leave the connection usable, clients that leave."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.ping import Ping
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeVoice,
)

from server.speech.catalog import OPENAI_VOICES, QWEN_SPEAKERS
from server.text import split_sentences
from tests.support.audio import decode_pcm16
from tests.support.engine_control import inference_held, wait_until
from tests.support.live_server import LiveServer, RecordCollector, free_port, live_server
from tests.support.reference import encode_soundfile, tone
from tests.support.wyoming_client import (
    RawReader,
    Spoken,
    client_for,
    encode_event,
    raw_connect,
    read,
    read_audio,
    read_until_stopped,
    run,
)

STREAMED = "Hello there, this is the first one. And here comes the second sentence."


@pytest.fixture(scope="module")
def wyoming_server(
    custom_voice_dir: Path, base_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """One job at a time in the queue, so a second one is refused while the first is held."""
    with live_server(
        model_id=str(custom_voice_dir),
        clone_model_id=str(base_dir),
        voices_dir=tmp_path_factory.mktemp("voices"),
        idle_timeout=0,
        max_new_tokens=32,
        max_queue_depth=1,
        wyoming_port=free_port(),
        wyoming_host="127.0.0.1",
    ) as server:
        yield server


def test_describe_lists_every_voice_with_its_languages(wyoming_server: LiveServer) -> None:
    with wyoming_server.client() as http:
        reference = encode_soundfile(tone(2.0), 24_000, "wav")
        created = http.post("/v1/audio/voices", data={"name": "Kitchen"}, files={"audio_sample": ("r.wav", reference)})
        assert created.status_code == 200, created.text

    async def ask(client: AsyncTcpClient) -> Info:
        await client.write_event(Describe().event())
        return Info.from_event(await read(client))

    info = run(ask, wyoming_server)
    [program] = info.tts
    assert program.supports_synthesize_streaming and program.installed
    names = [voice.name for voice in program.voices]
    assert names == [*QWEN_SPEAKERS, *OPENAI_VOICES, "Kitchen"]
    assert all({"en", "zh", "de", "ja"} <= set(voice.languages) for voice in program.voices)


def test_one_shot_synthesis_streams_int16_audio(wyoming_server: LiveServer, request_log: RecordCollector) -> None:
    async def speak(client: AsyncTcpClient) -> Spoken:
        voice = SynthesizeVoice(name="Ryan")
        await client.write_event(Synthesize(text="One shot. Two sentences in it.", voice=voice).event())
        return await read_audio(client)

    spoken = run(speak, wyoming_server)
    assert (spoken.start.rate, spoken.start.width, spoken.start.channels) == (24_000, 2, 1)
    assert len(spoken.chunks) >= 2
    audio = decode_pcm16(spoken.audio)
    assert audio.rms > 1e-3
    [line] = request_log.wait_for_requests(1, endpoint="wyoming")
    assert line["status"] == 200 and line["voice"] == "Ryan"
    assert line["audio_seconds"] == pytest.approx(audio.duration, abs=1e-3)


def test_streaming_speaks_each_sentence_as_soon_as_it_is_complete(
    wyoming_server: LiveServer, request_log: RecordCollector
) -> None:
    cut = STREAMED.index("one.") + 6  # the first sentence and the start of the second: "An"
    first, rest = STREAMED[:cut], STREAMED[cut:]

    async def stream(client: AsyncTcpClient) -> tuple[Spoken, list[Spoken]]:
        # A language alone (the client sends no language with a name): the default voice.
        await client.write_event(SynthesizeStart(voice=SynthesizeVoice(language="en-US")).event())
        for piece in (first[:7], first[7:20], first[20:]):  # cut mid-word: "Hello t" "here, this is" ...
            await client.write_event(SynthesizeChunk(text=piece).event())
        # The first sentence is spoken before the rest of the text exists.
        early = await read_audio(client)
        for piece in (rest[:5], rest[5:]):
            await client.write_event(SynthesizeChunk(text=piece).event())
        await client.write_event(Synthesize(text=STREAMED).event())  # the compatibility copy: ignored
        await client.write_event(SynthesizeStop().event())
        return early, await read_until_stopped(client)

    early, later = run(stream, wyoming_server)
    assert len(later) == 1
    spoken = [early, *later]
    assert all(decode_pcm16(s.audio).rms > 1e-3 for s in spoken)
    lines = request_log.wait_for_requests(2, endpoint="wyoming-stream")
    assert [line["chars"] for line in lines] == [len(s) for s in split_sentences(STREAMED)]
    assert [line["language"] for line in lines] == ["English", "English"]
    assert [line["voice"] for line in lines] == ["Vivian", "Vivian"]
    assert [line["request_id"].rsplit(".", 1)[1] for line in lines] == ["0", "1"]
    assert request_log.requests("wyoming") == []  # the whole-text copy was not spoken


def test_errors_leave_the_connection_usable(wyoming_server: LiveServer) -> None:
    async def session(client: AsyncTcpClient) -> tuple[list[Error], Spoken, list[Spoken]]:
        errors = []
        for bad in (
            Synthesize(text="Hello.", voice=SynthesizeVoice(name="nobody")).event(),
            Synthesize(text="Hello.", voice=SynthesizeVoice(name="Ryan", speaker="two")).event(),
            Synthesize(text="   ").event(),
            SynthesizeChunk(text="no stream open").event(),
            Event(type="synthesize", data={"voice": {"name": "Ryan"}}),  # no text at all
            Event(type="synthesize", data={"text": 42}),
        ):
            await client.write_event(bad)
            event = await read(client)
            assert Error.is_type(event.type), event.type
            errors.append(Error.from_event(event))
        await client.write_event(Synthesize(text="Now it works.", voice=SynthesizeVoice(name="Vivian")).event())
        good = await read_audio(client)
        # A refused stream start: one error, its chunks dropped, its stop still answered.
        await client.write_event(SynthesizeStart(voice=SynthesizeVoice(language="Klingon")).event())
        errors.append(Error.from_event(await read(client)))
        await client.write_event(SynthesizeChunk(text="Dropped. Quite dropped.").event())
        await client.write_event(SynthesizeStop().event())
        return errors, good, await read_until_stopped(client)

    errors, good, after_refused = run(session, wyoming_server)
    assert [e.code for e in errors] == [
        "invalid_voice",
        "invalid_request_error",
        "invalid_request_error",
        "invalid_request_error",
        "invalid_request_error",
        "invalid_request_error",
        "unsupported_language",
    ]
    assert "nobody" in errors[0].text and "Vivian" in errors[0].text
    assert decode_pcm16(good.audio).rms > 1e-3
    assert after_refused == []


# Events over MAX_JSON_BYTES, refused from their header: only the header (or the first
# MAX_JSON_BYTES of a header line with no end) is sent, so a server that waited for the body
# would never answer.
OVERSIZED = {
    "header line": lambda limit: b"x" * (limit + 1024),
    "data_length": lambda limit: b'{"type": "synthesize", "data_length": %d}\n' % (16 * limit),
    "payload_length": lambda limit: (
        b'{"type": "synthesize", "data": {"text": "Hi."}, "payload_length": %d}\n' % (limit + 1)
    ),
}


@pytest.mark.parametrize("kind", sorted(OVERSIZED))
def test_an_event_over_max_json_bytes_is_refused_from_its_header(wyoming_server: LiveServer, kind: str) -> None:
    limit = wyoming_server.settings.max_json_bytes
    with raw_connect(wyoming_server.app.state.wyoming.port, timeout=30) as sock:
        sock.sendall(OVERSIZED[kind](limit))
        reader = RawReader(sock)
        refused = reader.read()
        assert refused is not None and Error.is_type(refused.type), refused
        assert Error.from_event(refused).code == "payload_too_large"
        assert str(limit) in Error.from_event(refused).text
        assert reader.read() is None  # and the connection is closed

    async def again(client: AsyncTcpClient) -> Spoken:
        await client.write_event(Synthesize(text="Still serving.").event())
        return await read_audio(client)

    assert decode_pcm16(run(again, wyoming_server).audio).rms > 1e-3


def test_odd_events_are_refused_and_broken_framing_ends_the_connection(wyoming_server: LiveServer) -> None:
    port = wyoming_server.app.state.wyoming.port
    odd = [
        b'{"type": 42}\n',
        b'{"type": "synthesize", "data": [1, 2]}\n',
        b'{"type": "synthesize", "data_length": 6}\nnot js',
        b'{"type": "synthesize", "data_length": 2}\n[]',
        b"\n",
    ]
    with raw_connect(port, timeout=30) as sock:
        reader = RawReader(sock)
        for raw in odd:
            sock.sendall(raw + encode_event(Ping(text="after").event()))
            answers = reader.read_until("pong")
            assert [event.type for event in answers] == ["error", "pong"], (raw, answers)
        sock.sendall(encode_event(Synthesize(text="Still usable.").event()))
        assert reader.read_until("audio-stop")[-1].type == "audio-stop"
    for broken in (b"not json\n", b"[1, 2]\n", b'{"type": "synthesize", "payload_length": -1}\n'):
        with raw_connect(port, timeout=30) as sock:
            sock.sendall(broken)
            reader = RawReader(sock)
            answer = reader.read()
            assert answer is not None and Error.is_type(answer.type), (broken, answer)
            assert reader.read() is None, broken


def test_full_queue_is_an_error_and_a_client_that_leaves_frees_its_job(
    wyoming_server: LiveServer, request_log: RecordCollector
) -> None:
    engine = wyoming_server.engine

    async def scenario() -> Error:
        with inference_held(wyoming_server):
            leaving = client_for(wyoming_server)
            await leaving.connect()
            await leaving.write_event(
                Synthesize(text="I will not wait for this.", voice=SynthesizeVoice("Ryan")).event()
            )
            await asyncio.to_thread(wait_until, lambda: engine.depth == 1)
            async with client_for(wyoming_server) as second:
                await second.write_event(Synthesize(text="No room for me.").event())
                refused = Error.from_event(await read(second))
            await leaving.disconnect()
            # The job is freed while the inference thread is still held: it never ran.
            await asyncio.to_thread(wait_until, lambda: engine.depth == 0)
        return refused

    refused = asyncio.run(scenario())
    assert refused.code == "server_busy"
    statuses = [line["status"] for line in request_log.wait_for_requests(2, endpoint="wyoming")]
    assert sorted(statuses) == [499, 503]

    async def again(client: AsyncTcpClient) -> Spoken:
        await client.write_event(Synthesize(text="The queue is free again.").event())
        return await read_audio(client)

    assert decode_pcm16(run(again, wyoming_server).audio).rms > 1e-3


def test_off_by_default(server: LiveServer) -> None:
    assert server.app.state.wyoming is None


def test_with_api_keys_saved_voices_stay_behind_the_key_and_stop_closes_connections(
    custom_voice_dir: Path, base_dir: Path, tmp_path: Path
) -> None:
    with live_server(
        model_id=str(custom_voice_dir),
        clone_model_id=str(base_dir),
        voices_dir=tmp_path,
        max_new_tokens=32,
        api_keys="secret",
        wyoming_port=free_port(),
        wyoming_host="127.0.0.1",
    ) as server:
        with server.client(headers={"Authorization": "Bearer secret"}) as http:
            reference = encode_soundfile(tone(2.0), 24_000, "wav")
            saved = http.post(
                "/v1/audio/voices", data={"name": "Private"}, files={"audio_sample": ("r.wav", reference)}
            )
            assert saved.status_code == 200, saved.text

        async def session() -> tuple[Info, Error, bool]:
            client = client_for(server)
            await client.connect()
            await client.write_event(Describe().event())
            info = Info.from_event(await read(client))
            await client.write_event(Synthesize(text="Hello.", voice=SynthesizeVoice(name="Private")).event())
            refused = Error.from_event(await read(client))
            # The server stops with this connection still open: the connection is closed.
            await asyncio.to_thread(server.stop)
            closed = await client.read_event() is None
            await client.disconnect()
            return info, refused, closed

        info, refused, closed = asyncio.run(session())
    assert [voice.name for voice in info.tts[0].voices] == [*QWEN_SPEAKERS, *OPENAI_VOICES]
    assert refused.code == "invalid_voice"
    assert closed and not server._thread.is_alive()


# uvicorn's thread ends with SystemExit when the lifespan fails to start: that is the point.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_wyoming_port_in_use_stops_the_start_and_the_engine(custom_voice_dir: Path, base_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        inference_threads = {t for t in threading.enumerate() if t.name == "inference"}
        with (
            pytest.raises(RuntimeError, match="did not start"),
            live_server(
                model_id=str(custom_voice_dir),
                clone_model_id=str(base_dir),
                wyoming_port=port,
                wyoming_host="127.0.0.1",
            ),
        ):
            pass
    wait_until(lambda: {t for t in threading.enumerate() if t.name == "inference"} <= inference_threads)


def test_pauses_and_ssml_voices_are_read_on_wyoming(wyoming_server: LiveServer, request_log: RecordCollector) -> None:
    ssml = '<speak><voice name="Ryan">Hello.</voice><break time="500ms"/><voice name="Vivian">Bye now.</voice></speak>'

    async def speak(client: AsyncTcpClient) -> Spoken:
        await client.write_event(Synthesize(text=ssml, voice=SynthesizeVoice(name="Ryan")).event())
        return await read_audio(client)

    samples = decode_pcm16(run(speak, wyoming_server).audio).samples
    # The half second between the two voices is exact silence.
    silent = samples == 0
    longest = max((len(run_) for run_ in "".join("0" if s else "1" for s in silent).split("1")), default=0)
    assert longest >= 12_000
    [line] = request_log.wait_for_requests(1, endpoint="wyoming")
    assert (line["pauses"], line["ssml_elements"], line["parts"]) == (1, 4, 2)
