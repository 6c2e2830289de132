"""The jobs API on one live server (API keys on): a Markdown book with chapters, subtitles and
Range requests; a two-voice dialogue whose audio is the single requests' audio in order; 409
until done; DELETE; who sees which job; pages; the limits and a file upload."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import soundfile as sf
from mutagen.flac import FLAC
from mutagen.id3 import ID3

from tests.support.live_server import LiveServer, live_server

KEYS = ("sk-jobs-a-0123456789", "sk-jobs-b-0123456789", "sk-jobs-c-0123456789")
MAX_INPUT_BYTES = 4096
BOOK = """# The Start

It was a quiet morning. The birds were singing.

Nobody was awake yet.

# The End

And then it was over.
"""


@pytest.fixture(scope="module")
def jobs_server(
    custom_voice_dir: Path, base_dir: Path, aligner_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    scratch = tmp_path_factory.mktemp("jobs-api")
    with live_server(
        model_id=str(custom_voice_dir),
        clone_model_id=str(base_dir),
        idle_timeout=0,
        voices_dir=scratch / "voices",
        jobs_dir=scratch / "jobs",
        jobs_max_input_bytes=MAX_INPUT_BYTES,
        max_new_tokens=24,
        audio_cache_max=0,
        api_keys=",".join(KEYS),
        aligner_model_id=str(aligner_checkpoint),  # word timestamps, for the job that asks
    ) as running:
        yield running


def client(server: LiveServer, key: str = KEYS[0]) -> httpx.Client:
    return server.client(headers={"Authorization": f"Bearer {key}"})


def submit(http: httpx.Client, **body: Any) -> dict[str, Any]:
    response = http.post("/v1/audio/jobs", json={"voice": "Ryan", **body})
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    assert job["status"] == "queued" and job["object"] == "audio.job"
    return job


def progress_until_done(http: httpx.Client, job_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The progress events, then the final job (from the `done` event)."""
    seen: list[dict[str, Any]] = []
    name = ""
    with http.stream("GET", f"/v1/audio/jobs/{job_id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = orjson.loads(line.removeprefix("data: "))
                if name == "done":
                    return seen, data
                seen.append(data)
    raise AssertionError("the event stream ended without a done event")


def test_a_markdown_book_gives_one_file_with_chapters_subtitles_and_ranges(jobs_server: LiveServer) -> None:
    with client(jobs_server) as http:
        job = submit(http, input=BOOK, response_format="wav", seed=11, paragraph_pause_ms=300)
        assert job["progress"]["segments_total"] == 3
        events, done = progress_until_done(http, job["id"])
        assert done["status"] == "succeeded" and done["progress"]["segments_done"] == 3
        done_counts = [e["progress"]["segments_done"] for e in events]
        assert done_counts == sorted(done_counts)  # progress only goes forward

        audio = http.get(f"/v1/audio/jobs/{job['id']}/content")
        assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
        assert len(audio.content) == done["bytes"]
        pcm, rate = sf.read(io.BytesIO(audio.content), dtype="int16")
        assert rate == 24_000

        part = http.get(f"/v1/audio/jobs/{job['id']}/content", headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == audio.content[100:200]

        chapters = http.get(f"/v1/audio/jobs/{job['id']}/chapters").json()["data"]
        assert [c["title"] for c in chapters] == ["The Start", "The End"]
        assert chapters[-1]["end"] == pytest.approx(len(pcm) / rate, abs=0.001)
        segments = http.get(f"/v1/audio/jobs/{job['id']}/segments").json()["data"]
        assert chapters[1]["start"] == segments[2]["start"]
        # The pause before a chapter is silence in the file, its first segment is not.
        gap = pcm[round(segments[1]["end"] * rate) + 1 : round(segments[2]["start"] * rate) - 1]
        assert gap.size > 0 and not gap.any()

        srt = http.get(f"/v1/audio/jobs/{job['id']}/subtitles", params={"format": "srt"})
        assert srt.headers["content-type"].startswith("application/x-subrip")
        assert "It was a quiet morning. The birds were singing." in srt.text and srt.text.count(" --> ") == 3
        vtt = http.get(f"/v1/audio/jobs/{job['id']}/subtitles").text
        assert vtt.startswith("WEBVTT") and "And then it was over." in vtt


def test_a_dialogue_is_the_single_requests_in_order_with_the_pauses_between(jobs_server: LiveServer) -> None:
    text = "# Meeting\nAlice: Hello Bob.\nBob: Hi Alice.\n# Parting\nAlice: Goodbye now.\nBob: See you soon."
    with client(jobs_server) as http:
        job = submit(
            http,
            input=text,
            speakers={"Alice": "Vivian", "Bob": "Aiden"},
            response_format="pcm",
            seed=500,
            item_pause_ms=200,
            chapter_pause_ms=700,
        )
        _, done = progress_until_done(http, job["id"])
        assert done["status"] == "succeeded"
        result = http.get(f"/v1/audio/jobs/{job['id']}/content").content
        segments = http.get(f"/v1/audio/jobs/{job['id']}/segments").json()["data"]
        assert [s["voice"] for s in segments] == ["Vivian", "Aiden", "Vivian", "Aiden"]

        expected = b""
        starts = []
        for segment in segments:
            single = http.post(
                "/v1/audio/speech",
                json={
                    "voice": segment["voice"],
                    "input": segment["text"],
                    "seed": segment["seed"],
                    "max_new_tokens": 24,
                    "response_format": "pcm",
                    "stream": False,
                },
            )
            assert single.status_code == 200
            starts.append(len(expected) / 2 / 24_000)
            expected += single.content + b"\0\0" * (24 * segment["pause_after_ms"])
        assert [s["pause_after_ms"] for s in segments] == [200, 700, 200, 0]
        assert result == expected
        chapters = http.get(f"/v1/audio/jobs/{job['id']}/chapters").json()["data"]
        assert [(c["title"], c["start"]) for c in chapters] == [
            ("Meeting", 0.0),
            ("Parting", pytest.approx(starts[2], abs=0.001)),
        ]


def test_content_is_409_until_done_and_delete_cancels_and_removes(jobs_server: LiveServer) -> None:
    many = [{"input": f"Item number {i} of a longer job."} for i in range(40)]
    with client(jobs_server) as http:
        first = submit(http, inputs=many, response_format="mp3")
        second = submit(http, input="Waiting its turn.", response_format="mp3")
        # The second job starts only once every segment of the first one has been taken.
        for job in (first, second):
            refused = http.get(f"/v1/audio/jobs/{job['id']}/content")
            assert refused.status_code == 409, refused.text
            assert refused.json()["error"]["code"] == "conflict"
        deleted = http.delete(f"/v1/audio/jobs/{first['id']}")
        assert deleted.json() == {
            "id": first["id"],
            "object": "audio.job.deleted",
            "deleted": True,
            "status": "cancelled",
        }
        assert http.get(f"/v1/audio/jobs/{first['id']}").status_code == 404
        jobs_dir = jobs_server.settings.jobs_dir
        assert not (jobs_dir / first["id"]).exists()
        _, done = progress_until_done(http, second["id"])
        assert done["status"] == "succeeded"
        assert http.delete(f"/v1/audio/jobs/{second['id']}").json()["status"] == "succeeded"


def test_a_job_is_seen_only_with_the_key_that_created_it_and_pages_newest_first(jobs_server: LiveServer) -> None:
    with client(jobs_server, KEYS[2]) as owner, client(jobs_server, KEYS[1]) as stranger:
        created = [submit(owner, input=f"Page test {n}.", response_format="pcm")["id"] for n in range(3)]
        page = owner.get("/v1/audio/jobs", params={"limit": 2}).json()
        assert [j["id"] for j in page["data"]] == created[:0:-1] and page["has_more"]
        rest = owner.get("/v1/audio/jobs", params={"limit": 2, "after": page["last_id"]}).json()
        assert [j["id"] for j in rest["data"]] == created[:1] and not rest["has_more"]

        assert created[0] not in {j["id"] for j in stranger.get("/v1/audio/jobs").json()["data"]}
        for method in ("GET", "DELETE"):
            assert stranger.request(method, f"/v1/audio/jobs/{created[0]}").status_code == 404
        assert httpx.get(f"{jobs_server.base_url}/v1/audio/jobs").status_code == 401
        for job_id in created:
            assert owner.delete(f"/v1/audio/jobs/{job_id}").status_code == 200


def test_limits_and_unknown_values_are_refused_before_anything_is_stored(jobs_server: LiveServer) -> None:
    with client(jobs_server) as http:
        too_big = http.post("/v1/audio/jobs", json={"voice": "Ryan", "input": "word " * 1000})
        assert too_big.status_code == 413 and too_big.json()["error"]["param"] == "input"
        unknown_voice = http.post(
            "/v1/audio/jobs", json={"voice": "Ryan", "input": "A: hi", "speakers": {"A": "NoSuchVoice"}}
        )
        assert unknown_voice.status_code == 400 and unknown_voice.json()["error"]["param"] == "speakers"
        bad_format = http.post("/v1/audio/jobs", json={"voice": "Ryan", "input": "hi", "response_format": "xyz"})
        assert bad_format.status_code == 400 and bad_format.json()["error"]["param"] == "response_format"
        bad_tag = http.post("/v1/audio/jobs", json={"voice": "Ryan", "input": "One.\n\nTwo [pause:soon] three."})
        assert bad_tag.status_code == 400 and "segment 1" in bad_tag.json()["error"]["message"], bad_tag.text
        refused_field = http.post("/v1/audio/jobs", json={"voice": "Ryan", "input": "hi", "pitch": 2})
        assert refused_field.status_code == 400 and refused_field.json()["error"]["param"] == "pitch"
        upload = {"file": ("book.pdf", b"%PDF", "application/pdf")}
        pdf = http.post("/v1/audio/jobs", data={"voice": "Ryan"}, files=upload)
        assert pdf.status_code == 400 and pdf.json()["error"]["param"] == "file"


def test_a_markdown_file_upload_is_a_job_with_its_chapters(jobs_server: LiveServer) -> None:
    with client(jobs_server) as http:
        response = http.post(
            "/v1/audio/jobs",
            data={"voice": "Ryan", "response_format": "flac", "seed": "3", "chapter_pause_ms": "100"},
            files={"file": ("book.md", BOOK.encode(), "text/markdown")},
        )
        assert response.status_code == 202, response.text
        job = response.json()
        assert (job["seed"], job["response_format"]) == (3, "flac")
        _, done = progress_until_done(http, job["id"])
        assert done["status"] == "succeeded"
        chapters = http.get(f"/v1/audio/jobs/{job['id']}/chapters").json()["data"]
        assert [c["title"] for c in chapters] == ["The Start", "The End"]
        content = http.get(f"/v1/audio/jobs/{job['id']}/content").content
        audio, rate = sf.read(io.BytesIO(content))
        assert len(audio) / rate == pytest.approx(chapters[-1]["end"], abs=0.001)
        assert np.abs(audio).max() > 0
        # FLAC carries its chapters as Vorbis comments.
        tags = FLAC(io.BytesIO(content)).tags
        assert tags is not None
        assert (tags["CHAPTER001"], tags["CHAPTER001NAME"]) == (["00:00:00.000"], ["The Start"])
        assert tags["CHAPTER002NAME"] == ["The End"]


def test_an_mp3_result_carries_its_chapters_as_id3_frames(jobs_server: LiveServer) -> None:
    with client(jobs_server) as http:
        job = submit(http, input=BOOK, response_format="mp3", seed=4)
        _, done = progress_until_done(http, job["id"])
        assert done["status"] == "succeeded"
        content = http.get(f"/v1/audio/jobs/{job['id']}/content").content
        chapters = http.get(f"/v1/audio/jobs/{job['id']}/chapters").json()["data"]
    tags = ID3(io.BytesIO(content))
    [toc] = tags.getall("CTOC")
    assert toc.child_element_ids == ["chp0", "chp1"]
    frames = sorted(tags.getall("CHAP"), key=lambda chap: chap.element_id)
    assert [(f.sub_frames["TIT2"].text[0], f.start_time, f.end_time) for f in frames] == [
        (c["title"], round(c["start"] * 1000), round(c["end"] * 1000)) for c in chapters
    ]
    assert sf.info(io.BytesIO(content)).duration == pytest.approx(chapters[-1]["end"], abs=0.1)


def test_the_job_command_submits_shows_progress_and_downloads(
    jobs_server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from server.__main__ import main

    book = tmp_path / "book.md"
    book.write_text(BOOK)
    output, captions = tmp_path / "book.wav", tmp_path / "book.vtt"
    command = ["job", str(book), "--voice", "Ryan", "-o", str(output), "--seed", "11"]
    command += ["--url", jobs_server.base_url, "--api-key", KEYS[0], "--subtitles", str(captions), "--timestamps"]
    assert main([*command, "--chapters", str(tmp_path / "chapters.json")]) == 0
    shown = capsys.readouterr().err
    assert "3/3 segments" in shown and f"wrote {output}" in shown
    audio, rate = sf.read(output)
    chapters = orjson.loads((tmp_path / "chapters.json").read_bytes())["data"]
    assert len(audio) / rate == pytest.approx(chapters[-1]["end"], abs=0.001)
    assert captions.read_text().count(" --> ") == 3
    assert captions.read_text().count("<00:") > 0  # each cue's later words carry their times

    assert main(["job", str(book), "--voice", "Ryan", "-o", str(output), "--url", jobs_server.base_url]) == 2
    assert "401" in capsys.readouterr().err


def test_a_jobs_pronunciations_are_read_as_on_the_speech_endpoint(jobs_server: LiveServer) -> None:
    said = {"text": "Dr.", "alias": "Doctor"}
    with client(jobs_server) as http:
        job = submit(http, input="Dr. Smith is in.", response_format="pcm", seed=77, pronunciations=[said])
        _, done = progress_until_done(http, job["id"])
        assert done["status"] == "succeeded"
        content = http.get(f"/v1/audio/jobs/{job['id']}/content").content
        body = {"voice": "Ryan", "input": "Dr. Smith is in.", "seed": 77, "max_new_tokens": 24}
        single = http.post("/v1/audio/speech", json={**body, "response_format": "pcm", "stream": False})
        plain = http.post(
            "/v1/audio/speech", json={**body, "response_format": "pcm", "stream": False, "pronunciations": [said]}
        )
        assert content == plain.content != single.content
        refused = http.post(
            "/v1/audio/jobs",
            json={"voice": "Ryan", "input": "Hi.", "pronunciations": [{**said, "language": "Klingon"}]},
        )
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "pronunciations[0].language"


def test_word_timestamps_come_from_the_aligner_and_time_the_subtitles(jobs_server: LiveServer) -> None:
    with client(jobs_server) as http:
        job = submit(http, input=BOOK, response_format="wav", seed=8, timestamps=True)
        _, done = progress_until_done(http, job["id"])
        assert done["status"] == "succeeded"
        segments = http.get(f"/v1/audio/jobs/{job['id']}/segments").json()["data"]
        vtt = http.get(f"/v1/audio/jobs/{job['id']}/subtitles").text
    for segment in segments:
        words = segment["words"]
        assert [w["word"] for w in words] == segment["text"].replace(".", "").split()
        assert all(segment["start"] <= w["start"] <= w["end"] <= segment["end"] + 0.001 for w in words)
    # WebVTT marks the words after each cue's first with their times (karaoke-style).
    later = segments[1]["words"][1]["start"]
    assert f"<{_vtt_clock(later)}>" in vtt


def _vtt_clock(seconds: float) -> str:
    millis = round(seconds * 1000)
    return f"{millis // 3_600_000:02d}:{millis // 60_000 % 60:02d}:{millis // 1000 % 60:02d}.{millis % 1000:03d}"


def test_word_timestamps_need_the_aligner(server: LiveServer) -> None:
    """The suite's shared server has no aligner: asking is a 400 that says how to turn it on."""
    with server.client() as http:
        refused = http.post("/v1/audio/jobs", json={"voice": "Ryan", "input": "Hi.", "timestamps": True})
    assert refused.status_code == 400
    assert (refused.json()["error"]["param"], refused.json()["error"]["code"]) == (
        "timestamps",
        "timestamps_unavailable",
    )
